{{- define "settle.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "settle.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "settle.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "settle.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "settle.baseLabels" -}}
app.kubernetes.io/name: {{ include "settle.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "settle.selectorLabels" -}}
{{ include "settle.baseLabels" . }}
app.kubernetes.io/component: coordinator
{{- end -}}

{{- define "settle.metaLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: settle
{{- end -}}

{{- define "settle.labels" -}}
{{ include "settle.metaLabels" . }}
{{ include "settle.selectorLabels" . }}
{{- end -}}

{{- define "settle.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
settle.validate fails rendering on settings the coordinator would refuse
or that are unsafe, with a message naming the value to set.
*/}}
{{- define "settle.validate" -}}
{{- $ := . -}}
{{- if not .Values.database.existingSecret -}}
{{- fail "database.existingSecret is required: the name of a Secret whose key database.key (default \"dsn\") holds the coordinator's -db, e.g. mysql:settle:PASSWORD@tcp(mysql:3306)/settle" -}}
{{- end -}}
{{- if not (kindIs "bool" .Values.insecureNoAuth) -}}
{{- fail "insecureNoAuth must be true or false" -}}
{{- end -}}
{{- if and (not .Values.insecureNoAuth) (not .Values.auth.tokenSecret) (not .Values.auth.mtlsIdentities) -}}
{{- fail "authentication is required: set auth.tokenSecret (a Secret with a token,name,role file) or auth.mtlsIdentities (with tls.enabled and tls.clientCASecret); the coordinator refuses to listen on 0.0.0.0 without it. Only if something in front authenticates every caller, set insecureNoAuth: true" -}}
{{- end -}}
{{- if and .Values.auth.mtlsIdentities (not .Values.tls.clientCASecret) -}}
{{- fail "auth.mtlsIdentities needs mutual TLS: set tls.enabled, tls.secretName and tls.clientCASecret" -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) -}}
{{- fail "tls.enabled needs tls.secretName (a kubernetes.io/tls Secret with tls.crt and tls.key)" -}}
{{- end -}}
{{- if and .Values.tls.clientCASecret (not .Values.tls.enabled) -}}
{{- fail "tls.clientCASecret (mutual TLS) needs tls.enabled" -}}
{{- end -}}
{{- $shutdown := int .Values.shutdownTimeoutSeconds -}}
{{- $grace := int .Values.terminationGracePeriodSeconds -}}
{{- $sleep := int .Values.preStopSleepSeconds -}}
{{- if lt $shutdown 1 -}}
{{- fail "shutdownTimeoutSeconds must be at least 1" -}}
{{- end -}}
{{- if le $grace (add $shutdown $sleep) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be longer than shutdownTimeoutSeconds (%d) plus preStopSleepSeconds (%d): otherwise running delivery rounds are killed mid-shutdown" $grace $shutdown $sleep) -}}
{{- end -}}
{{- range $k, $v := .Values.config -}}
{{- if has $k (list "db" "listen" "http-listen" "auth-token-file" "auth-mtls-identities" "insecure-no-auth" "tls-cert" "tls-key" "tls-client-ca" "participant-tls-ca" "participant-tls-cert" "participant-tls-key" "allow-participants" "shutdown-timeout" "config") -}}
{{- fail (printf "config.%s is set by the chart from its own values (see values.yaml); set that value instead" $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The environment shared by the coordinator and the migration Job. */}}
{{- define "settle.dbEnv" -}}
- name: SETTLE_DB
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
{{- end -}}

{{- define "settle.configEnvName" -}}
{{- printf "SETTLE_%s" (. | upper | replace "-" "_") -}}
{{- end -}}
