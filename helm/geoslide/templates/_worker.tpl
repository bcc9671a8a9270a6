{{/*
A Dask worker Deployment, shared by the CPU and GPU pools.
Usage: include "geoslide.workerDeployment" (dict "root" . "pool" "gpu")
*/}}
{{- define "geoslide.workerDeployment" -}}
{{- $root := .root }}
{{- $pool := .pool }}
{{- $w := index $root.Values.workers $pool }}
{{- $component := printf "worker-%s" $pool }}
{{- $gpu := eq $pool "gpu" }}
{{- $resources := deepCopy $w.resources }}
{{- if $gpu }}
{{- $limits := default dict $resources.limits }}
{{- $_ := set $limits $w.resourceName (int $w.gpusPerPod) }}
{{- $_ := set $resources "limits" $limits }}
{{- end }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "geoslide.componentName" (list $root $component) }}
  labels:
    {{- include "geoslide.labels" (list $root $component) | nindent 4 }}
  {{- with include "geoslide.secretEnvAnnotations" $root | trim }}
  {{- . | nindent 2 }}
  {{- end }}
spec:
  replicas: {{ $w.replicas }}
  selector:
    matchLabels:
      {{- include "geoslide.selectorLabels" (list $root $component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "geoslide.labels" (list $root $component) | nindent 8 }}
      {{- with $w.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      {{- include "geoslide.podCommon" $root | nindent 6 }}
      {{- with $w.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- if and $gpu $w.runtimeClassName }}
      runtimeClassName: {{ $w.runtimeClassName }}
      {{- end }}
      # Dask keeps state in memory; give a worker time to hand its data back on scale-down.
      terminationGracePeriodSeconds: 60
      containers:
        - name: worker
          image: {{ include "geoslide.image" (list $root (ternary $w.image dict $gpu)) | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command:
            - dask
            - worker
          args:
            - {{ include "geoslide.schedulerAddress" $root | quote }}
            - --nworkers
            - "1"
            - --nthreads
            - {{ $w.nthreads | quote }}
            - --memory-limit
            - {{ $w.memoryLimit | quote }}
            - --local-directory
            - /scratch
            - --dashboard-address
            - {{ printf ":%d" (int $root.Values.workers.dashboardPort) | quote }}
            {{- if $gpu }}
            - --resources
            - {{ printf "GPU=%d" (int $w.gpusPerPod) | quote }}
            {{- end }}
            {{- range $w.extraArgs }}
            - {{ . | quote }}
            {{- end }}
          env:
            {{- include "geoslide.baseEnv" $root | nindent 12 }}
            - name: DASK_DISTRIBUTED__WORKER__DAEMON
              value: {{ ternary "True" "False" $root.Values.workers.daemon | quote }}
            {{- with include "geoslide.objectStoreEnv" $root | trim }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with $w.env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: http-dashboard
              containerPort: {{ $root.Values.workers.dashboardPort }}
              protocol: TCP
          # Ready once the worker process (started by its nanny) serves HTTP; a rollout waits for
          # that instead of counting a pod whose worker is still importing torch as available.
          readinessProbe:
            httpGet:
              path: /health
              port: http-dashboard
            initialDelaySeconds: 5
            periodSeconds: 10
            failureThreshold: 3
          livenessProbe:
            httpGet:
              path: /health
              port: http-dashboard
            initialDelaySeconds: 60
            periodSeconds: 30
            failureThreshold: 6
          {{- include "geoslide.containerSecurityContext" $root | nindent 10 }}
          resources:
            {{- toYaml $resources | nindent 12 }}
          volumeMounts:
            {{- include "geoslide.tmpMount" $root | nindent 12 }}
            - name: dask-local
              mountPath: /scratch
            {{- with include "geoslide.sharedMount" $root | trim }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- if $w.shmSizeLimit }}
            - name: dshm
              mountPath: /dev/shm
            {{- end }}
      volumes:
        {{- include "geoslide.tmpVolume" $root | nindent 8 }}
        - name: dask-local
          emptyDir:
            sizeLimit: {{ $w.localDirSizeLimit }}
        {{- with include "geoslide.sharedVolume" $root | trim }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- if $w.shmSizeLimit }}
        - name: dshm
          emptyDir:
            medium: Memory
            sizeLimit: {{ $w.shmSizeLimit }}
        {{- end }}
      {{- with $w.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $w.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $w.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
