{{/* Names, labels and images shared by every template. */}}

{{- define "switchyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or the release name alone when it already contains the chart name. */}}
{{- define "switchyard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The operator's Deployment, ClusterRole, Lease and (by default) ServiceAccount. */}}
{{- define "switchyard.operatorName" -}}
{{- printf "%s-operator" (include "switchyard.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchyard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "switchyard.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.webhookServiceName" -}}
{{- printf "%s-webhook" (include "switchyard.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchyard.webhookCertSecret" -}}
{{- if .Values.webhook.existingCertSecret -}}
{{- .Values.webhook.existingCertSecret -}}
{{- else -}}
{{- printf "%s-webhook-cert" (include "switchyard.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
The CA bundle the webhook configurations carry (base64 PEM). With
webhook.existingCertSecret (GitOps: `helm template` cannot look anything up) it is
webhook.caBundle, so every render is the same; else the generated (or kept) CA.
*/}}
{{- define "switchyard.webhookCABundle" -}}
{{- if .Values.webhook.existingCertSecret -}}
{{- required "webhook.caBundle (base64 PEM of the CA that signed webhook.existingCertSecret) is required with webhook.existingCertSecret" .Values.webhook.caBundle -}}
{{- else -}}
{{- index (include "switchyard.webhookCertData" . | fromJson) "ca.crt" -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.chartLabel" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchyard.labels" -}}
helm.sh/chart: {{ include "switchyard.chartLabel" . }}
app.kubernetes.io/name: {{ include "switchyard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: switchyard
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "switchyard.operatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "switchyard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "switchyard.imageRef" -}}
{{- $repo := .repository -}}
{{- if .digest -}}
{{- printf "%s@%s" $repo .digest -}}
{{- else -}}
{{- printf "%s:%s" $repo .tag -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.image" -}}
{{- include "switchyard.imageRef" (dict "repository" .Values.image.repository "tag" (default .Chart.AppVersion .Values.image.tag) "digest" .Values.image.digest) -}}
{{- end -}}

{{/* The injected sidecar: the same image unless sidecar.image says otherwise. */}}
{{- define "switchyard.sidecarImage" -}}
{{- if or .Values.sidecar.image.repository .Values.sidecar.image.tag -}}
{{- include "switchyard.imageRef" (dict "repository" (default .Values.image.repository .Values.sidecar.image.repository) "tag" (default (default .Chart.AppVersion .Values.image.tag) .Values.sidecar.image.tag) "digest" "") -}}
{{- else -}}
{{- include "switchyard.image" . -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.leaderElection" -}}
{{- if .Values.operator.leaderElection.enabled -}}true{{- end -}}
{{- end -}}

{{/*
The webhook's generated CA and serving certificate as JSON {tls.crt, tls.key, ca.crt}
(base64). Reused from the existing Secret when there is one (so upgrades keep it),
generated otherwise; memoized in .Values so the Secret and the Deployment's checksum
annotation see the same certificate within one render.
*/}}
{{- define "switchyard.webhookCertData" -}}
{{- if not (hasKey .Values "__switchyardWebhookCert") -}}
{{- $fullname := include "switchyard.fullname" . -}}
{{- $svc := include "switchyard.webhookServiceName" . -}}
{{- $ns := .Release.Namespace -}}
{{- $existing := lookup "v1" "Secret" $ns (include "switchyard.webhookCertSecret" .) -}}
{{- $data := dict -}}
{{- if and $existing $existing.data (hasKey $existing.data "tls.crt") (hasKey $existing.data "tls.key") (hasKey $existing.data "ca.crt") -}}
{{- $data = dict "tls.crt" (index $existing.data "tls.crt") "tls.key" (index $existing.data "tls.key") "ca.crt" (index $existing.data "ca.crt") -}}
{{- else -}}
{{- $days := int .Values.webhook.selfSigned.validityDays -}}
{{- $dns := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) -}}
{{- $ca := genCA (printf "%s-webhook-ca" $fullname) $days -}}
{{- $cert := genSignedCert (printf "%s.%s.svc" $svc $ns) nil $dns $days $ca -}}
{{- $data = dict "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) "ca.crt" ($ca.Cert | b64enc) -}}
{{- end -}}
{{- $_ := set .Values "__switchyardWebhookCert" $data -}}
{{- end -}}
{{- toJson (index .Values "__switchyardWebhookCert") -}}
{{- end -}}

{{- /*
The namespaces the operator watches, as a JSON list ([] = every namespace). Namespaced
is the default: operator.watchNamespaces, or else appNamespaces; watching every
namespace (a ClusterRole that lists labelled Secrets and pods cluster-wide) only with
operator.clusterWide=true. See docs/security.md.
*/ -}}
{{- define "switchyard.watchNamespaces" -}}
{{- if .Values.operator.clusterWide -}}
{{- if .Values.operator.watchNamespaces -}}
{{- fail "switchyard: operator.clusterWide=true watches every namespace; leave operator.watchNamespaces empty" -}}
{{- end -}}
[]
{{- else -}}
{{- $ns := .Values.operator.watchNamespaces | default .Values.appNamespaces -}}
{{- if not $ns -}}
{{- fail "switchyard: the operator is namespaced by default: list the namespaces it serves in appNamespaces (or operator.watchNamespaces), or set operator.clusterWide=true to watch every namespace (docs/security.md)" -}}
{{- end -}}
{{- toJson (uniq $ns) -}}
{{- end -}}
{{- end -}}
