{{/*
Expand the name of the chart.
*/}}
{{- define "moscow-time.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name (63 characters: some DNS name fields are limited to
this). If the release name contains the chart name it is used as the full name.
*/}}
{{- define "moscow-time.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version as used by the chart label.
*/}}
{{- define "moscow-time.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Namespace of every resource.
*/}}
{{- define "moscow-time.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels. Never used in selectors or volumeClaimTemplates: those fields are immutable and
the version labels change on every upgrade.
*/}}
{{- define "moscow-time.labels" -}}
helm.sh/chart: {{ include "moscow-time.chart" . }}
{{ include "moscow-time.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: only name and instance.
*/}}
{{- define "moscow-time.selectorLabels" -}}
app.kubernetes.io/name: {{ include "moscow-time.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Create the name of the service account to use.
*/}}
{{- define "moscow-time.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "moscow-time.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Name of the headless Service (StatefulSet serviceName, PEERS_DNS).
*/}}
{{- define "moscow-time.headlessServiceName" -}}
{{- printf "%s-headless" (include "moscow-time.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
An image reference from {registry, repository, tag, digest}, composed like bitnami's
common.images.image: [registry/]repository, then @digest when a digest is set (the tag is then
ignored: a digest pins the exact image), else :tag, defaulting to .default (the appVersion).
Usage: include "moscow-time.imageRef" (dict "image" .Values.image "default" .Chart.AppVersion)
*/}}
{{- define "moscow-time.imageRef" -}}
{{- $name := .image.repository }}
{{- with .image.registry }}
{{- $name = printf "%s/%s" . $name }}
{{- end }}
{{- if .image.digest }}
{{- printf "%s@%s" $name .image.digest }}
{{- else }}
{{- printf "%s:%s" $name (toString (default .default .image.tag)) }}
{{- end }}
{{- end }}

{{/*
Render-time checks that the schema cannot express.
*/}}
{{- define "moscow-time.validate" -}}
{{- /* SIGTERM starts the delay (still serving while endpoints catch up), then the drain of at
most the shutdown timeout; the kubelet SIGKILLs at the grace period, so both must fit in it. */}}
{{- $delay := int (default 0 .Values.config.shutdown_delay_secs) }}
{{- $shutdown := int (default 20 .Values.config.shutdown_timeout_secs) }}
{{- $grace := int .Values.terminationGracePeriodSeconds }}
{{- if le $grace (add $delay $shutdown) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than config.shutdown_delay_secs (%d) + config.shutdown_timeout_secs (%d) = %d: the kubelet would SIGKILL the pod while it drains" $grace $delay $shutdown (add $delay $shutdown)) }}
{{- end }}
{{- if and .Values.pdb.minAvailable .Values.pdb.maxUnavailable }}
{{- fail "set only one of pdb.minAvailable and pdb.maxUnavailable" }}
{{- end }}
{{- end }}
