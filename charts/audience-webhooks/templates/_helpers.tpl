{{/* The chart's name, cut to 63 characters (a DNS label). */}}
{{- define "audience-webhooks.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every resource name: the release name, with the chart's name unless the
release name already holds it. */}}
{{- define "audience-webhooks.fullname" -}}
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

{{- define "audience-webhooks.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "audience-webhooks.labels" -}}
helm.sh/chart: {{ include "audience-webhooks.chart" . }}
{{ include "audience-webhooks.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the release's pods (a component label is added per workload). */}}
{{- define "audience-webhooks.selectorLabels" -}}
app.kubernetes.io/name: {{ include "audience-webhooks.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "audience-webhooks.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding the service's own secrets (secret key, API token), or "" when there
is none: the worker then runs without a secret key (storing secrets is refused). */}}
{{- define "audience-webhooks.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if or .Values.secrets.secretKey .Values.secrets.apiToken }}
{{- include "audience-webhooks.fullname" . }}
{{- end }}
{{- end }}

{{/* Whether that Secret holds the previous keys (key rotation). */}}
{{- define "audience-webhooks.hasPreviousKey" -}}
{{- if .Values.secrets.existingSecret }}
{{- if .Values.secrets.existingSecretHasPreviousKey }}true{{ end }}
{{- else if .Values.secrets.secretKeyPrevious }}true{{ end }}
{{- end }}

{{/* The settings as WEBHOOKS_* values (strings), with the ones the chart decides. */}}
{{- define "audience-webhooks.settings" -}}
{{- range $key, $value := .Values.settings }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
WEBHOOKS_HTTP_PORT: {{ .Values.worker.port | quote }}
WEBHOOKS_DATA_DIR: "/var/lib/webhooks"
{{- end }}

{{/* The restricted Pod Security Standard: the pod's and each container's security context. */}}
{{- define "audience-webhooks.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "audience-webhooks.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Volume mounts and volumes for the secrets: `api` adds the API token. */}}
{{- define "audience-webhooks.secretMounts" -}}
{{- if include "audience-webhooks.secretName" . }}
- name: secrets
  mountPath: /etc/webhooks/secrets
  readOnly: true
{{- end }}
{{- if .Values.kafkaCredentials.existingSecret }}
- name: kafka-credentials
  mountPath: /etc/webhooks/kafka
  readOnly: true
{{- end }}
{{- end }}

{{- define "audience-webhooks.secretVolumes" -}}
{{- $secret := include "audience-webhooks.secretName" . }}
{{- if $secret }}
- name: secrets
  secret:
    secretName: {{ $secret }}
    defaultMode: 0440
{{- end }}
{{- if .Values.kafkaCredentials.existingSecret }}
- name: kafka-credentials
  secret:
    secretName: {{ .Values.kafkaCredentials.existingSecret }}
    {{- if .Values.kafkaCredentials.optional }}
    optional: true
    {{- end }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{/* WEBHOOKS_*_FILE variables naming the mounted secret files. */}}
{{- define "audience-webhooks.secretEnv" -}}
{{- if include "audience-webhooks.secretName" .root }}
{{- if or .root.Values.secrets.existingSecret .root.Values.secrets.secretKey }}
- name: WEBHOOKS_SECRET_KEY_FILE
  value: /etc/webhooks/secrets/secret-key
{{- end }}
{{- if include "audience-webhooks.hasPreviousKey" .root }}
- name: WEBHOOKS_SECRET_KEY_PREVIOUS_FILE
  value: /etc/webhooks/secrets/secret-key-previous
{{- end }}
{{- if .api }}
- name: WEBHOOKS_API_TOKEN_FILE
  value: /etc/webhooks/secrets/api-token
{{- end }}
{{- end }}
{{- end }}

{{/*
The workers' env: their secret files, then the OTEL_* variables of values.yaml `otel`
(traces are off unless these ask for them).
*/}}
{{- define "audience-webhooks.workerEnv" -}}
{{ include "audience-webhooks.secretEnv" (dict "root" . "api" false) }}
{{- range $name, $value := .Values.otel }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* WEBHOOKS_KAFKA_SECURITY_PROTOCOL as the workers read it (PLAINTEXT by default). */}}
{{- define "audience-webhooks.kafkaProtocol" -}}
{{ .Values.settings.WEBHOOKS_KAFKA_SECURITY_PROTOCOL | default "PLAINTEXT" | toString | upper }}
{{- end }}

{{/* WEBHOOKS_KAFKA_SASL_MECHANISM as the workers read it (PLAIN by default). */}}
{{- define "audience-webhooks.kafkaMechanism" -}}
{{ .Values.settings.WEBHOOKS_KAFKA_SASL_MECHANISM | default "PLAIN" | toString | upper }}
{{- end }}

{{/* The kafka trigger's `sasl` for the SASL mechanism; empty: one KEDA cannot take from a
Secret. */}}
{{- define "audience-webhooks.kedaSasl" -}}
{{ get (dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512") (include "audience-webhooks.kafkaMechanism" .) }}
{{- end }}
