use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::convert::{default_pull_policy, expand_refs};
use super::*;

const FILE: &str = "pods/test.yaml";

fn parse(text: &str) -> (Vec<DesiredPod>, Vec<ManifestError>) {
    parse_file(FILE, text.as_bytes())
}

#[track_caller]
fn one_pod(text: &str) -> DesiredPod {
    let (mut pods, errors) = parse(text);
    assert!(errors.is_empty(), "unexpected errors: {errors:#?}");
    assert_eq!(pods.len(), 1, "{pods:#?}");
    pods.remove(0)
}

#[track_caller]
fn only_errors(text: &str) -> Vec<ManifestError> {
    let (pods, errors) = parse(text);
    assert!(pods.is_empty(), "a pod with errors was returned: {pods:#?}");
    assert!(!errors.is_empty(), "no errors for:\n{text}");
    errors
}

/// Lines 1-8; `extra` starts at line 9. Indent 4 continues the container, 2 the spec,
/// 0 the Pod object.
const BASE: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: example.com/app:1.0
";

fn base(extra: &str) -> String {
    format!("{BASE}{extra}")
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

const REALISTIC: &str = r#"# The web front-end.
apiVersion: v1
kind: Pod
metadata:
  name: frontend
  namespace: shop
  labels:
    app: frontend
    tier: web
  annotations:
    rkt.io/networks: "default, backend"
    rkt.io/replace: start-first
    example.com/owner: team-a
spec:
  hostname: front
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 10
  securityContext:
    runAsUser: 1000
    runAsGroup: 1000
  volumes:
  - name: content
    hostPath:
      path: /srv/www
      type: Directory
  - name: cache
    emptyDir: {}
  initContainers:
  - name: warm-up
    image: docker://busybox:1.36
    command: ["/bin/sh", "-c", "echo warming $(TARGET)"]
    env:
    - name: TARGET
      value: cache
    volumeMounts:
    - name: cache
      mountPath: /cache
  containers:
  - name: nginx
    image: example.com/nginx:1.25
    args: ["-g", "daemon off;"]
    workingDir: /srv
    env:
    - name: MODE
      value: production
    - name: EMPTY
    ports:
    - name: http
      containerPort: 8080
      hostPort: 80
    - containerPort: 9090
      protocol: UDP
    volumeMounts:
    - name: content
      mountPath: /usr/share/nginx/html
      readOnly: true
    - name: cache
      mountPath: /var/cache/nginx
    resources:
      limits:
        memory: 128Mi
        cpu: 500m
      requests:
        memory: 64Mi
        cpu: 100m
    securityContext:
      runAsUser: 101
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities:
        add: ["NET_BIND_SERVICE", "CAP_CHOWN"]
        drop: ["all"]
    livenessProbe:
      httpGet:
        path: /healthz
        port: http
      initialDelaySeconds: 5
      periodSeconds: 20
    readinessProbe:
      exec:
        command: ["cat", "/tmp/ready"]
      timeoutSeconds: 2
      successThreshold: 2
      failureThreshold: 5
"#;

#[test]
fn realistic_pod_parses_into_the_exact_desired_pod() {
    let pod = one_pod(REALISTIC);
    let expected = DesiredPod {
        key: PodKey {
            namespace: "shop".into(),
            name: "frontend".into(),
        },
        file: FILE.into(),
        line: 2,
        labels: map(&[("app", "frontend"), ("tier", "web")]),
        annotations: map(&[
            ("rkt.io/networks", "default, backend"),
            ("rkt.io/replace", "start-first"),
            ("example.com/owner", "team-a"),
        ]),
        spec_hash: pod.spec_hash.clone(),
        restart_policy: RestartPolicy::OnFailure,
        host_network: false,
        private_users: false,
        hostname: Some("front".into()),
        host_aliases: Vec::new(),
        dns: None,
        termination_grace_period_secs: 10,
        stage1: Flavor::Default,
        networks: strings(&["default", "backend"]),
        replace: ReplaceStrategy::StartFirst,
        image_privileges: false,
        placement: Placement::default(),
        init_containers: vec![DesiredContainer {
            name: "warm-up".into(),
            image: "docker://busybox:1.36".into(),
            image_pull_policy: ImagePullPolicy::IfNotPresent,
            command: strings(&["/bin/sh", "-c", "echo warming cache"]),
            args: vec![],
            env: vec![("TARGET".into(), "cache".into())],
            working_dir: None,
            ports: vec![],
            volume_mounts: vec![VolumeMount {
                name: "cache".into(),
                mount_path: "/cache".into(),
                read_only: false,
            }],
            memory_limit_bytes: None,
            cpu_millis: None,
            run_as_user: Some(1000),
            run_as_group: Some(1000),
            read_only_root_filesystem: false,
            capabilities_add: vec![],
            capabilities_drop: vec![],
            privileged: false,
            seccomp: Seccomp::Default,
            liveness_probe: None,
            readiness_probe: None,
        }],
        containers: vec![DesiredContainer {
            name: "nginx".into(),
            image: "example.com/nginx:1.25".into(),
            image_pull_policy: ImagePullPolicy::IfNotPresent,
            command: vec![],
            args: strings(&["-g", "daemon off;"]),
            env: vec![
                ("MODE".into(), "production".into()),
                ("EMPTY".into(), String::new()),
            ],
            working_dir: Some("/srv".into()),
            ports: vec![
                ContainerPort {
                    name: Some("http".into()),
                    container_port: 8080,
                    host_port: Some(80),
                    protocol: "TCP".into(),
                },
                ContainerPort {
                    name: None,
                    container_port: 9090,
                    host_port: None,
                    protocol: "UDP".into(),
                },
            ],
            volume_mounts: vec![
                VolumeMount {
                    name: "content".into(),
                    mount_path: "/usr/share/nginx/html".into(),
                    read_only: true,
                },
                VolumeMount {
                    name: "cache".into(),
                    mount_path: "/var/cache/nginx".into(),
                    read_only: false,
                },
            ],
            memory_limit_bytes: Some(128 << 20),
            cpu_millis: Some(500),
            run_as_user: Some(101),
            run_as_group: Some(1000),
            read_only_root_filesystem: true,
            capabilities_add: strings(&["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]),
            capabilities_drop: strings(&["ALL"]),
            privileged: false,
            seccomp: Seccomp::Default,
            liveness_probe: Some(Probe {
                action: ProbeAction::HttpGet {
                    path: "/healthz".into(),
                    port: 8080,
                    scheme: "HTTP".into(),
                },
                initial_delay_secs: 5,
                period_secs: 20,
                timeout_secs: 1,
                success_threshold: 1,
                failure_threshold: 3,
            }),
            readiness_probe: Some(Probe {
                action: ProbeAction::Exec {
                    command: strings(&["cat", "/tmp/ready"]),
                },
                initial_delay_secs: 0,
                period_secs: 10,
                timeout_secs: 2,
                success_threshold: 2,
                failure_threshold: 5,
            }),
        }],
        volumes: vec![
            DesiredVolume::HostPath {
                name: "content".into(),
                path: "/srv/www".into(),
                kind: Some("Directory".into()),
            },
            DesiredVolume::EmptyDir {
                name: "cache".into(),
            },
        ],
        warnings: Vec::new(),
    };
    assert_eq!(pod, expected);
    assert_eq!(pod.spec_hash.len(), 64);
    assert!(pod.spec_hash.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(pod.key.to_string(), "shop/frontend");
}

const JSON_POD: &str = r#"{
	"apiVersion": "v1",
	"kind": "Pod",
	"metadata": {"name": "web", "labels": {"app": "web"}},
	"spec": {
		"containers": [
			{
				"name": "app",
				"image": "example.com/app:1.0",
				"command": ["/bin/httpd", "-f"],
				"ports": [{"containerPort": 80, "hostPort": 8080}]
			}
		]
	}
}
"#;

#[test]
fn json_pod_parses_like_the_same_yaml() {
    let from_json = one_pod(JSON_POD);
    let from_yaml = one_pod(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  \
         containers:\n  - name: app\n    image: example.com/app:1.0\n    command: [/bin/httpd, \
         -f]\n    ports:\n    - {containerPort: 80, hostPort: 8080}\n",
    );
    assert_eq!(from_json.line, 1);
    assert_eq!(from_json.containers[0].ports[0].host_port, Some(8080));
    assert_eq!(from_json.spec_hash, from_yaml.spec_hash);
    assert_eq!(
        DesiredPod {
            line: 0,
            ..from_json
        },
        DesiredPod {
            line: 0,
            ..from_yaml
        }
    );
}

#[test]
fn json_errors_have_positions_too() {
    let text = JSON_POD.replace("\"command\"", "\"comand\"");
    let errors = only_errors(&text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = &errors[0];
    assert_eq!((e.line, e.column), (Some(10), Some(5)));
    assert_eq!(e.field, "spec.containers[0].comand");
    assert_eq!(e.message, "unknown field comand; did you mean command?");
}

#[test]
fn multi_document_file_returns_the_good_pods_and_reports_the_bad() {
    let text = "\
# two pods
apiVersion: v1
kind: Pod
metadata: {name: good}
spec:
  containers: [{name: a, image: example.com/a:1}]
---
apiVersion: v1
kind: Pod
metadata: {name: bad}
spec:
  containers:
  - name: a
    image: example.com/a:1
    env:
    - name: X
      valueFrom: {secretKeyRef: {name: s, key: k}}
---
# an empty document is ignored
---
apiVersion: v1
kind: Pod
metadata: {name: broken
---
apiVersion: v1
kind: Pod
metadata: {name: third}
spec:
  containers: [{name: a, image: example.com/a:1}]
";
    let (pods, errors) = parse(text);
    let names: Vec<_> = pods.iter().map(|p| p.key.name.as_str()).collect();
    assert_eq!(names, ["good", "third"]);
    assert_eq!(pods[0].line, 2);
    assert_eq!(pods[1].line, 25);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[0].line, Some(17));
    assert_eq!(errors[0].column, Some(7));
    assert_eq!(errors[0].field, "spec.containers[0].env[0].valueFrom");
    assert!(errors[1].message.starts_with("invalid YAML"), "{errors:#?}");
    assert_eq!(errors[1].field, "");
    let line = errors[1].line.unwrap();
    assert!((22..=24).contains(&line), "{errors:#?}");
}

#[test]
fn list_of_pods() {
    let text = "\
apiVersion: v1
kind: List
metadata:
  resourceVersion: \"\"
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: one}
  spec:
    containers: [{name: a, image: example.com/a:1}]
- apiVersion: v1
  kind: Service
  metadata: {name: svc}
- apiVersion: v1
  kind: Pod
  metadata: {name: two, namespace: other}
  spec:
    containers: [{name: a, image: example.com/a:1, imagePullPolcy: Never}]
- apiVersion: v1
  kind: Pod
  metadata: {name: three}
  spec:
    containers: [{name: a, image: example.com/a:1}]
";
    let (pods, errors) = parse(text);
    let keys: Vec<_> = pods.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(keys, ["default/one", "default/three"]);
    assert_eq!(pods[0].line, 6);
    assert_eq!(pods[1].line, 19);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[0].field, "items[1].kind");
    assert_eq!((errors[0].line, errors[0].column), (Some(12), Some(9)));
    assert!(errors[0].message.contains("Pods only"));
    assert_eq!(
        errors[1].field,
        "items[2].spec.containers[0].imagePullPolcy"
    );
    assert_eq!(errors[1].line, Some(18));
    assert_eq!(
        errors[1].message,
        "unknown field imagePullPolcy; did you mean imagePullPolicy?"
    );
}

/// (what is appended to BASE at line 9, line, column, field, message start).
const UNSUPPORTED: &[(&str, usize, usize, &str, &str)] = &[
    (
        "    env:\n    - name: A\n      valueFrom:\n        fieldRef: {fieldPath: metadata.name}\n",
        11,
        7,
        "spec.containers[0].env[0].valueFrom",
        "valueFrom is not supported: use value",
    ),
    (
        "    envFrom:\n    - configMapRef: {name: cfg}\n",
        9,
        5,
        "spec.containers[0].envFrom",
        "envFrom is not supported",
    ),
    (
        "  nodeSelector:\n    disk: \"a b\"\n",
        10,
        11,
        "spec.nodeSelector[disk]",
        "\"a b\" is not a valid label value",
    ),
    (
        "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms: []\n",
        12,
        28,
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms",
        "nodeSelectorTerms needs at least one term",
    ),
    (
        "  hostPID: true\n",
        9,
        3,
        "spec.hostPID",
        "hostPID is not supported",
    ),
    (
        "  volumes:\n  - name: cfg\n    configMap:\n      name: cfg\n",
        11,
        5,
        "spec.volumes[0].configMap",
        "configMap is not supported: put the files on the host",
    ),
    (
        "  volumes:\n  - name: s\n    secret: {secretName: s}\n",
        11,
        5,
        "spec.volumes[0].secret",
        "secret is not supported",
    ),
    (
        "  volumes:\n  - name: data\n    persistentVolumeClaim: {claimName: data}\n",
        11,
        5,
        "spec.volumes[0].persistentVolumeClaim",
        "persistentVolumeClaim is not supported",
    ),
    (
        "  volumes:\n  - name: v\n    emptyDir:\n      medium: Memory\n",
        12,
        7,
        "spec.volumes[0].emptyDir.medium",
        "medium is not supported",
    ),
    (
        "    lifecycle:\n      preStop:\n        exec: {command: [sh]}\n",
        9,
        5,
        "spec.containers[0].lifecycle",
        "lifecycle is not supported: lifecycle hooks",
    ),
    (
        "    startupProbe:\n      exec: {command: [/bin/true]}\n",
        9,
        5,
        "spec.containers[0].startupProbe",
        "startupProbe is not supported",
    ),
    (
        "    tty: true\n",
        9,
        5,
        "spec.containers[0].tty",
        "tty is not supported",
    ),
    (
        "    securityContext:\n      runAsNonRoot: true\n",
        10,
        7,
        "spec.containers[0].securityContext.runAsNonRoot",
        "runAsNonRoot is not supported: set runAsUser",
    ),
    (
        "    securityContext:\n      seccompProfile:\n        type: Localhost\n",
        11,
        15,
        "spec.containers[0].securityContext.seccompProfile.type",
        "type Localhost is not supported",
    ),
    (
        "  securityContext:\n    fsGroup: 2000\n",
        10,
        5,
        "spec.securityContext.fsGroup",
        "fsGroup is not supported",
    ),
    (
        "    volumeMounts:\n    - name: v\n      mountPath: /v\n      subPath: x\n  volumes:\n  - \
         name: v\n    emptyDir: {}\n",
        12,
        7,
        "spec.containers[0].volumeMounts[0].subPath",
        "subPath is not supported",
    ),
    (
        "    resources:\n      limits:\n        nvidia.com/gpu: 1\n",
        11,
        9,
        "spec.containers[0].resources.limits.nvidia.com/gpu",
        "resource nvidia.com/gpu is not supported: only cpu and memory",
    ),
    (
        "    ports:\n    - containerPort: 80\n      hostIP: 127.0.0.1\n",
        11,
        7,
        "spec.containers[0].ports[0].hostIP",
        "hostIP is not supported",
    ),
    (
        "    livenessProbe:\n      grpc: {port: 9000}\n",
        10,
        7,
        "spec.containers[0].livenessProbe.grpc",
        "grpc is not supported",
    ),
    (
        "    livenessProbe:\n      tcpSocket: {port: 80, host: db}\n",
        10,
        29,
        "spec.containers[0].livenessProbe.tcpSocket.host",
        "host is not supported",
    ),
    (
        "    ports:\n    - containerPort: 80\n      protocol: SCTP\n",
        11,
        17,
        "spec.containers[0].ports[0].protocol",
        "SCTP ports are not supported",
    ),
    (
        "    livenessProbe:\n      httpGet: {port: 80, scheme: HTTPS}\n",
        10,
        35,
        "spec.containers[0].livenessProbe.httpGet.scheme",
        "scheme HTTPS is not supported",
    ),
    (
        "    securityContext:\n      allowPrivilegeEscalation: true\n",
        10,
        33,
        "spec.containers[0].securityContext.allowPrivilegeEscalation",
        "allowPrivilegeEscalation: true is not supported",
    ),
];

#[test]
fn unsupported_fields_are_errors_with_line_column_and_path() {
    for &(extra, line, column, field, message) in UNSUPPORTED {
        let text = base(extra);
        let errors = only_errors(&text);
        assert_eq!(errors.len(), 1, "{extra}: {errors:#?}");
        let e = &errors[0];
        assert_eq!(e.field, field, "{extra}");
        assert_eq!(
            (e.line, e.column),
            (Some(line), Some(column)),
            "{extra}: {e}"
        );
        assert!(e.message.starts_with(message), "{extra}: {}", e.message);
        assert_eq!(e.file, FILE);
    }
}

#[test]
fn unsupported_metadata_fields() {
    let cases = [
        (
            "  generateName: web-\n",
            "metadata.generateName",
            "generateName is not supported",
        ),
        (
            "  deletionTimestamp: \"2024-01-01T00:00:00Z\"\n",
            "metadata.deletionTimestamp",
            "deletionTimestamp is not supported",
        ),
        (
            "  finalizers: [example.com/x]\n",
            "metadata.finalizers",
            "finalizers is not supported",
        ),
    ];
    for (extra, field, message) in cases {
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n{extra}spec:\n  containers: [{{name: a, image: b}}]\n");
        let errors = only_errors(&text);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].field, field);
        assert_eq!((errors[0].line, errors[0].column), (Some(5), Some(3)));
        assert!(
            errors[0].message.starts_with(message),
            "{}",
            errors[0].message
        );
    }
}

/// Fields a single host has nothing to do with: (appended to BASE at line 9, line,
/// column, field, message start). The pod loads, with one warning.
const IGNORED: &[(&str, usize, usize, &str, &str)] = &[
    (
        "  tolerations:\n  - operator: Exists\n",
        9,
        3,
        "spec.tolerations",
        "tolerations is ignored: scheduling does not apply",
    ),
    (
        "  topologySpreadConstraints:\n  - {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}\n",
        9,
        3,
        "spec.topologySpreadConstraints",
        "topologySpreadConstraints is ignored: scheduling",
    ),
    (
        "  schedulingGates: [{name: x}]\n",
        9,
        3,
        "spec.schedulingGates",
        "schedulingGates is ignored",
    ),
    (
        "  priorityClassName: system-node-critical\n",
        9,
        3,
        "spec.priorityClassName",
        "priorityClassName is ignored: scheduling",
    ),
    (
        "  priority: 2000001000\n",
        9,
        3,
        "spec.priority",
        "priority is ignored",
    ),
    (
        "  preemptionPolicy: Never\n",
        9,
        3,
        "spec.preemptionPolicy",
        "preemptionPolicy is ignored",
    ),
    (
        "  schedulerName: my-scheduler\n",
        9,
        3,
        "spec.schedulerName",
        "schedulerName is ignored",
    ),
    (
        "  overhead: {cpu: 250m}\n",
        9,
        3,
        "spec.overhead",
        "overhead is ignored",
    ),
    (
        "  os: {name: linux}\n",
        9,
        3,
        "spec.os",
        "os is ignored",
    ),
    (
        "  serviceAccountName: builder\n",
        9,
        3,
        "spec.serviceAccountName",
        "serviceAccountName is ignored: there is no API server",
    ),
    (
        "  serviceAccount: builder\n",
        9,
        3,
        "spec.serviceAccount",
        "serviceAccount is ignored",
    ),
    (
        "  automountServiceAccountToken: true\n",
        9,
        3,
        "spec.automountServiceAccountToken",
        "automountServiceAccountToken is ignored",
    ),
    (
        "  enableServiceLinks: true\n",
        9,
        3,
        "spec.enableServiceLinks",
        "enableServiceLinks is ignored",
    ),
    (
        "  imagePullSecrets:\n  - name: regcred\n",
        9,
        3,
        "spec.imagePullSecrets",
        "imagePullSecrets is ignored: registry credentials come from the runtime's auth configuration (auth.d)",
    ),
    (
        "  readinessGates: [{conditionType: x}]\n",
        9,
        3,
        "spec.readinessGates",
        "readinessGates is ignored",
    ),
    (
        "status:\n  phase: Running\n",
        9,
        1,
        "status",
        "status is ignored: status is written by the runtime",
    ),
];

#[test]
fn ignored_fields_load_with_a_warning() {
    let plain = one_pod(&base(""));
    assert!(plain.warnings.is_empty(), "{:#?}", plain.warnings);
    for &(extra, line, column, field, message) in IGNORED {
        let text = base(extra);
        let pod = one_pod(&text);
        assert_eq!(pod.warnings.len(), 1, "{extra}: {:#?}", pod.warnings);
        let w = &pod.warnings[0];
        assert_eq!(w.field, field, "{extra}");
        assert_eq!(
            (w.line, w.column),
            (Some(line), Some(column)),
            "{extra}: {w}"
        );
        assert!(w.message.starts_with(message), "{extra}: {}", w.message);
        assert_eq!(w.file, FILE);
        // Ignored means ignored: the pod is the same as without the field.
        assert_eq!(pod.spec_hash, plain.spec_hash, "{extra}");
        assert_eq!(
            DesiredPod {
                warnings: Vec::new(),
                ..pod
            },
            plain,
            "{extra}"
        );

        // --strict: the warning is the file's error and the pod is refused.
        let (pods, errors) = super::strict(vec![one_pod(&text)], Vec::new());
        assert!(pods.is_empty(), "{extra}");
        assert_eq!(errors, vec![w.clone()], "{extra}");
    }
}

#[test]
fn ignored_metadata_fields_warn() {
    let cases = [
        ("  uid: 1234\n", "metadata.uid", "uid is ignored"),
        (
            "  ownerReferences: [{apiVersion: v1, kind: Node, name: n, uid: u}]\n",
            "metadata.ownerReferences",
            "ownerReferences is ignored",
        ),
        (
            "  resourceVersion: \"7\"\n",
            "metadata.resourceVersion",
            "resourceVersion is ignored: it is set by the Kubernetes API server",
        ),
        (
            "  generation: 3\n",
            "metadata.generation",
            "generation is ignored",
        ),
        (
            "  creationTimestamp: \"2024-01-01T00:00:00Z\"\n",
            "metadata.creationTimestamp",
            "creationTimestamp is ignored",
        ),
        (
            "  managedFields: [{manager: kubectl}]\n",
            "metadata.managedFields",
            "managedFields is ignored",
        ),
        (
            "  selfLink: /api/v1/pods/web\n",
            "metadata.selfLink",
            "selfLink is ignored",
        ),
    ];
    for (extra, field, message) in cases {
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n{extra}spec:\n  containers: [{{name: a, image: b}}]\n");
        let pod = one_pod(&text);
        assert_eq!(pod.warnings.len(), 1, "{:#?}", pod.warnings);
        let w = &pod.warnings[0];
        assert_eq!(w.field, field);
        assert_eq!((w.line, w.column), (Some(5), Some(3)));
        assert!(w.message.starts_with(message), "{}", w.message);
    }
}

#[test]
fn warnings_belong_to_their_pod_and_strict_keeps_the_clean_ones() {
    let text = "\
apiVersion: v1
kind: Pod
metadata: {name: one}
spec:
  priorityClassName: high
  tolerations: [{operator: Exists}]
  containers: [{name: a, image: b}]
---
apiVersion: v1
kind: Pod
metadata: {name: two}
spec:
  containers: [{name: a, image: b}]
---
apiVersion: v1
kind: Pod
metadata: {name: three}
spec:
  serviceAccountName: x
  containers: [{name: a, image: b, envFrom: [{configMapRef: {name: c}}]}]
";
    let (pods, errors) = parse(text);
    assert_eq!(pods.len(), 2, "{errors:#?}");
    let fields: Vec<_> = pods[0].warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(fields, ["spec.priorityClassName", "spec.tolerations"]);
    assert!(pods[1].warnings.is_empty());
    // The pod with an error is refused; its warning is not carried by another pod.
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].field, "spec.containers[0].envFrom");

    let (strict_pods, strict_errors) = super::strict(pods, errors);
    let keys: Vec<_> = strict_pods.iter().map(|p| p.key.name.as_str()).collect();
    assert_eq!(keys, ["two"]);
    let lines: Vec<_> = strict_errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [Some(5), Some(6), Some(20)]);
}

#[test]
fn kubectl_generated_defaults_are_accepted() {
    // What `kubectl run web --image=... --dry-run=client -o yaml` writes.
    let text = "\
apiVersion: v1
kind: Pod
metadata:
  creationTimestamp: null
  labels:
    run: web
  name: web
spec:
  containers:
  - image: example.com/app:1.0
    name: web
    resources: {}
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
  dnsPolicy: ClusterFirst
  enableServiceLinks: false
  restartPolicy: Always
status: {}
";
    let pod = one_pod(text);
    assert_eq!(pod.key.name, "web");
    assert_eq!(pod.labels, map(&[("run", "web")]));
    assert!(pod.warnings.is_empty(), "{:#?}", pod.warnings);
}

/// (appended at line 9, line, column, field, message).
const TYPOS: &[(&str, usize, usize, &str, &str)] = &[
    (
        "    imagePullPolcy: Always\n",
        9,
        5,
        "spec.containers[0].imagePullPolcy",
        "unknown field imagePullPolcy; did you mean imagePullPolicy?",
    ),
    (
        "    comand: [sh]\n",
        9,
        5,
        "spec.containers[0].comand",
        "unknown field comand; did you mean command?",
    ),
    (
        "    volumemounts: []\n",
        9,
        5,
        "spec.containers[0].volumemounts",
        "unknown field volumemounts; did you mean volumeMounts?",
    ),
    (
        "    working_dir: /srv\n",
        9,
        5,
        "spec.containers[0].working_dir",
        "unknown field working_dir; did you mean workingDir?",
    ),
    (
        "  restartpolicy: Never\n",
        9,
        3,
        "spec.restartpolicy",
        "unknown field restartpolicy; did you mean restartPolicy?",
    ),
    (
        "  hostNetwrok: true\n",
        9,
        3,
        "spec.hostNetwrok",
        "unknown field hostNetwrok; did you mean hostNetwork?",
    ),
    (
        "    ports:\n    - containerPort: 80\n      hostport: 8080\n",
        11,
        7,
        "spec.containers[0].ports[0].hostport",
        "unknown field hostport; did you mean hostPort?",
    ),
    (
        "    resources:\n      limit:\n        cpu: 1\n",
        10,
        7,
        "spec.containers[0].resources.limit",
        "unknown field limit; did you mean limits?",
    ),
    (
        "    resources:\n      limits:\n        memroy: 1Gi\n",
        11,
        9,
        "spec.containers[0].resources.limits.memroy",
        "resource memroy is not supported: only cpu and memory are enforced; did you mean memory?",
    ),
    (
        "    livenessProbe:\n      exec: {command: [/bin/true]}\n      periodSecond: 5\n",
        11,
        7,
        "spec.containers[0].livenessProbe.periodSecond",
        "unknown field periodSecond; did you mean periodSeconds?",
    ),
    (
        "    securityContext:\n      capabilities:\n        add: [NET_ADMN]\n",
        11,
        15,
        "spec.containers[0].securityContext.capabilities.add[0]",
        "unknown capability NET_ADMN; did you mean NET_ADMIN?",
    ),
    (
        "  volumes:\n  - name: v\n    hostPath: {path: /v, type: directory}\n",
        11,
        32,
        "spec.volumes[0].hostPath.type",
        "unknown hostPath type directory; did you mean Directory?",
    ),
    (
        "    xyzzy: 1\n",
        9,
        5,
        "spec.containers[0].xyzzy",
        "unknown field xyzzy (a container has: name, image,",
    ),
];

#[test]
fn typos_get_suggestions() {
    for &(extra, line, column, field, message) in TYPOS {
        let text = base(extra);
        let errors = only_errors(&text);
        assert_eq!(errors.len(), 1, "{extra}: {errors:#?}");
        let e = &errors[0];
        assert_eq!(e.field, field, "{extra}");
        assert_eq!(
            (e.line, e.column),
            (Some(line), Some(column)),
            "{extra}: {e}"
        );
        assert!(e.message.starts_with(message), "{extra}: {}", e.message);
    }
}

#[test]
fn typo_in_an_rkt_annotation() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  annotations:\n    \
                rkt.io/stage: fly\nspec:\n  containers: [{name: a, image: b}]\n";
    let errors = only_errors(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].field, "metadata.annotations[rkt.io/stage]");
    assert_eq!((errors[0].line, errors[0].column), (Some(6), Some(5)));
    assert_eq!(
        errors[0].message,
        "unknown rkt annotation; did you mean rkt.io/stage1?"
    );
}

#[test]
fn errors_are_collected_not_stop_at_first() {
    let text = "\
apiVersion: v1
kind: Pod
metadata:
  name: Web_1
spec:
  nodeSelector: {disk: \"a b\"}
  containers:
  - name: app
    image: example.com/app:1.0
    imagePullPolcy: Always
    env:
    - name: PORT
      value: 8080
    ports:
    - containerPort: 70000
";
    let errors = only_errors(text);
    let got: Vec<_> = errors
        .iter()
        .map(|e| (e.line.unwrap(), e.field.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (4, "metadata.name"),
            (6, "spec.nodeSelector[disk]"),
            (10, "spec.containers[0].imagePullPolcy"),
            (13, "spec.containers[0].env[0].value"),
            (15, "spec.containers[0].ports[0].containerPort"),
        ]
    );
    assert_eq!(
        errors[3].message,
        "expected a string, found number 8080; quote it: \"8080\""
    );
}

/// Whole documents that must fail: (text, line, field, message start).
fn validation_cases() -> Vec<(String, usize, &'static str, &'static str)> {
    vec![
        (
            base("  - name: app\n    image: example.com/other:1\n"),
            9,
            "spec.containers[1].name",
            "duplicate container name app (first at line 7)",
        ),
        (
            base("  initContainers:\n  - name: app\n    image: example.com/init:1\n"),
            7,
            "spec.containers[0].name",
            "duplicate container name app (first at line 10)",
        ),
        (
            BASE.replace("name: web", "name: Web_1"),
            4,
            "metadata.name",
            "\"Web_1\" is not a valid name",
        ),
        (
            BASE.replace("name: web", "name: web\n  namespace: Prod"),
            5,
            "metadata.namespace",
            "\"Prod\" is not a valid name",
        ),
        (
            BASE.replace("- name: app", "- name: App"),
            7,
            "spec.containers[0].name",
            "\"App\" is not a valid name",
        ),
        (
            BASE.replace("- name: app", "- name: a-very-long-container-name-that-goes-past-sixty-three-characters-x"),
            7,
            "spec.containers[0].name",
            "\"a-very-long-container-name-that-goes-past-sixty-three-characters-x\" is not a valid name: it must have 1 to 63",
        ),
        (
            base("  volumes:\n  - name: my_vol\n    emptyDir: {}\n"),
            10,
            "spec.volumes[0].name",
            "\"my_vol\" is not a valid name",
        ),
        (
            base("    volumeMounts:\n    - name: data\n      mountPath: /data\n"),
            10,
            "spec.containers[0].volumeMounts[0].name",
            "volume data is not declared in spec.volumes; declare it under spec.volumes",
        ),
        (
            base("    volumeMounts:\n    - name: dta\n      mountPath: /data\n  volumes:\n  - name: data\n    emptyDir: {}\n"),
            10,
            "spec.containers[0].volumeMounts[0].name",
            "volume dta is not declared in spec.volumes; did you mean data?",
        ),
        (
            base("    volumeMounts:\n    - name: data\n      mountPath: data\n  volumes:\n  - name: data\n    emptyDir: {}\n"),
            11,
            "spec.containers[0].volumeMounts[0].mountPath",
            "\"data\" must be an absolute path",
        ),
        (
            base("    volumeMounts:\n    - {name: data, mountPath: /d}\n    - {name: data, mountPath: /d/}\n  volumes:\n  - name: data\n    emptyDir: {}\n"),
            11,
            "spec.containers[0].volumeMounts[1].mountPath",
            "/d/ is mounted twice",
        ),
        (
            base("    ports:\n    - containerPort: 80\n      hostPort: 0\n"),
            11,
            "spec.containers[0].ports[0].hostPort",
            "hostPort 0 is out of range: it must be between 1 and 65535 (leave hostPort out",
        ),
        (
            base("    ports:\n    - containerPort: 80\n      hostPort: 70000\n"),
            11,
            "spec.containers[0].ports[0].hostPort",
            "hostPort 70000 is out of range",
        ),
        (
            base("    ports:\n    - containerPort: \"80\"\n"),
            10,
            "spec.containers[0].ports[0].containerPort",
            "expected a number, found the string \"80\"; remove the quotes",
        ),
        (
            base("    ports:\n    - {containerPort: 80, hostPort: 8080}\n  - name: two\n    image: b\n    ports:\n    - {containerPort: 81, hostPort: 8080}\n"),
            11,
            "spec.containers[1].ports",
            "hostPort 8080/TCP is used twice (first at line 7)",
        ),
        (
            base("    ports:\n    - {containerPort: 80, hostPort: 8080}\n  hostNetwork: true\n"),
            10,
            "spec.containers[0].ports[0].hostPort",
            "with hostNetwork: true the hostPort must equal containerPort (80)",
        ),
        (
            base("    ports:\n    - {name: web, containerPort: 80}\n    - {name: web, containerPort: 81}\n"),
            11,
            "spec.containers[0].ports[1].name",
            "duplicate port name web",
        ),
        (
            base("    ports:\n    - {name: HTTP, containerPort: 80}\n"),
            10,
            "spec.containers[0].ports[0].name",
            "\"HTTP\" is not a valid port name",
        ),
        (
            base("    livenessProbe:\n      tcpSocket: {port: metrics}\n"),
            10,
            "spec.containers[0].livenessProbe.tcpSocket.port",
            "the container has no port named metrics (it has no named ports)",
        ),
        (
            base("    livenessProbe:\n      periodSeconds: 5\n"),
            10,
            "spec.containers[0].livenessProbe",
            "a probe needs one of exec, tcpSocket or httpGet",
        ),
        (
            base("    livenessProbe:\n      exec: {command: [/bin/true]}\n      tcpSocket: {port: 80}\n"),
            11,
            "spec.containers[0].livenessProbe.tcpSocket",
            "a probe has exactly one of exec, tcpSocket",
        ),
        (
            base("    livenessProbe:\n      exec: {command: [/bin/true]}\n      successThreshold: 2\n"),
            11,
            "spec.containers[0].livenessProbe.successThreshold",
            "successThreshold of a livenessProbe must be 1",
        ),
        (
            base("    readinessProbe:\n      exec: {command: [/bin/true]}\n      periodSeconds: 0\n"),
            11,
            "spec.containers[0].readinessProbe.periodSeconds",
            "0 is out of range",
        ),
        (
            base("    readinessProbe:\n      httpGet: {port: 80, path: healthz}\n"),
            10,
            "spec.containers[0].readinessProbe.httpGet.path",
            "path healthz must start with /",
        ),
        (
            base("  initContainers:\n  - name: init\n    image: b\n    readinessProbe:\n      exec: {command: [/bin/true]}\n"),
            12,
            "spec.initContainers[0].readinessProbe",
            "readinessProbe is not allowed on an init container",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n".to_string(),
            7,
            "spec.containers[0].image",
            "image is required",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - image: b\n".to_string(),
            7,
            "spec.containers[0].name",
            "name is required",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers: []\n".to_string(),
            6,
            "spec.containers",
            "a pod needs at least one container",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  restartPolicy: Never\n".to_string(),
            6,
            "spec.containers",
            "containers is required",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  labels: {a: b}\nspec:\n  containers: [{name: a, image: b}]\n".to_string(),
            4,
            "metadata.name",
            "name is required",
        ),
        (
            "apiVersion: v1\nkind: Pod\nspec:\n  containers: [{name: a, image: b}]\n".to_string(),
            1,
            "metadata",
            "metadata is required",
        ),
        (
            BASE.replace("apiVersion: v1", "apiVersion: apps/v1"),
            1,
            "apiVersion",
            "apiVersion apps/v1 is not supported: a Pod has apiVersion v1",
        ),
        (
            BASE.replace("kind: Pod", "kind: Deployment"),
            2,
            "kind",
            "kind Deployment is not supported",
        ),
        (
            BASE.replace("kind: Pod", "kind: pod"),
            2,
            "kind",
            "kind pod is not supported: a manifest holds Pods (kind: Pod) or a List of Pods; did you mean Pod?",
        ),
        (
            BASE.replace("  name: web", "  name: web\n  labels:\n    app: -bad-"),
            6,
            "metadata.labels[app]",
            "\"-bad-\" is not a valid label value",
        ),
        (
            BASE.replace("  name: web", "  name: web\n  labels:\n    app: 1"),
            6,
            "metadata.labels[app]",
            "expected a string, found number 1",
        ),
        (
            BASE.replace("  name: web", "  name: web\n  labels:\n    bad key: x"),
            6,
            "metadata.labels[bad key]",
            "\"bad key\" is not a valid key",
        ),
        (
            BASE.replace("  name: web", "  name: web\n  name: other"),
            5,
            "metadata.name",
            "duplicate field (first at line 4)",
        ),
        (
            base("    env:\n    - {name: A, value: x}\n    - {name: A, value: y}\n"),
            11,
            "spec.containers[0].env[1].name",
            "duplicate env name A (first at line 10)",
        ),
        (
            base("    env:\n    - {name: \"A=B\", value: x}\n"),
            10,
            "spec.containers[0].env[0].name",
            "\"A=B\" is not a valid environment variable name",
        ),
        (
            base("    workingDir: srv\n"),
            9,
            "spec.containers[0].workingDir",
            "\"srv\" must be an absolute path",
        ),
        (
            base("    resources:\n      limits: {memory: 64Mi}\n      requests: {memory: 128Mi}\n"),
            11,
            "spec.containers[0].resources.requests.memory",
            "the memory request is larger than its limit",
        ),
        (
            base("    resources:\n      limits: {memory: 12XB}\n"),
            10,
            "spec.containers[0].resources.limits.memory",
            "invalid quantity \"12XB\"",
        ),
        (
            base("    securityContext:\n      privileged: true\n      allowPrivilegeEscalation: false\n"),
            11,
            "spec.containers[0].securityContext.allowPrivilegeEscalation",
            "allowPrivilegeEscalation: false contradicts privileged: true",
        ),
        (
            base("    securityContext:\n      capabilities: {add: [ALL]}\n"),
            10,
            "spec.containers[0].securityContext.capabilities.add[0]",
            "adding ALL capabilities is not supported",
        ),
        (
            base("    securityContext:\n      runAsUser: -1\n"),
            10,
            "spec.containers[0].securityContext.runAsUser",
            "-1 is out of range",
        ),
        (
            base("    securityContext:\n      readOnlyRootFilesystem: \"true\"\n"),
            10,
            "spec.containers[0].securityContext.readOnlyRootFilesystem",
            "expected true or false, found the string \"true\"; remove the quotes",
        ),
        (
            base("  restartPolicy: Sometimes\n"),
            9,
            "spec.restartPolicy",
            "unknown restartPolicy Sometimes: use Always, OnFailure or Never",
        ),
        (
            base("    imagePullPolicy: Maybe\n"),
            9,
            "spec.containers[0].imagePullPolicy",
            "unknown imagePullPolicy Maybe",
        ),
        (
            base("  terminationGracePeriodSeconds: -5\n"),
            9,
            "spec.terminationGracePeriodSeconds",
            "-5 is out of range",
        ),
        (
            base("  hostname: web.example.com\n"),
            9,
            "spec.hostname",
            "\"web.example.com\" is not a valid name",
        ),
        (
            base("  volumes:\n  - name: v\n    hostPath: {path: srv}\n"),
            11,
            "spec.volumes[0].hostPath.path",
            "\"srv\" must be an absolute path",
        ),
        (
            base("  volumes:\n  - name: v\n    hostPath: {path: /srv}\n    emptyDir: {}\n"),
            12,
            "spec.volumes[0]",
            "a volume has exactly one source",
        ),
        (
            base("  volumes:\n  - name: v\n"),
            10,
            "spec.volumes[0]",
            "a volume needs a source",
        ),
        (
            base("  volumes:\n  - {name: v, emptyDir: {}}\n  - {name: v, emptyDir: {}}\n"),
            11,
            "spec.volumes[1].name",
            "duplicate volume name v (first at line 10)",
        ),
        (
            base("    image: example.com/again:1\n"),
            9,
            "spec.containers[0].image",
            "duplicate field (first at line 8)",
        ),
        (
            BASE.replace("image: example.com/app:1.0", "image: \"example.com/app 1.0\""),
            8,
            "spec.containers[0].image",
            "image \"example.com/app 1.0\" contains white space",
        ),
        (
            BASE.replace("  name: web", "  name: web\n  annotations:\n    rkt.io/stage1: kvm"),
            6,
            "metadata.annotations[rkt.io/stage1]",
            "unknown stage1 flavor kvm: use default or fly",
        ),
        (
            BASE.replace("  name: web", "  name: web\n  annotations:\n    rkt.io/stage1: fly"),
            6,
            "metadata.annotations[rkt.io/stage1]",
            "the fly stage1 runs apps in the host's namespaces; set spec.hostNetwork: true",
        ),
        (
            base("  hostNetwork: true\n").replace("  name: web", "  name: web\n  annotations:\n    rkt.io/networks: default"),
            6,
            "metadata.annotations[rkt.io/networks]",
            "the pod uses the host's network",
        ),
        (
            BASE.replace("  name: web", "  name: web\n  annotations:\n    rkt.io/networks: \"a,,b\""),
            6,
            "metadata.annotations[rkt.io/networks]",
            "\"a,,b\" has an empty network name",
        ),
        (
            BASE.replace("  name: web", "  name: web\n  annotations:\n    rkt.io/networks: host"),
            6,
            "metadata.annotations[rkt.io/networks]",
            "use spec.hostNetwork: true",
        ),
        (
            BASE.replace("  name: web", "  name: web\n  annotations:\n    rkt.io/replace: rolling"),
            6,
            "metadata.annotations[rkt.io/replace]",
            "unknown replace strategy rolling: use stop-first or start-first",
        ),
        (
            "- just\n- a list\n".to_string(),
            1,
            "",
            "expected a Kubernetes object",
        ),
        (
            "apiVersion: v1\nmetadata: {name: x}\n".to_string(),
            1,
            "kind",
            "kind is required",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: a, image: !custom b}]\n".to_string(),
            5,
            "",
            "invalid YAML: tag !custom is not supported",
        ),
    ]
}

#[test]
fn validation_errors() {
    for (text, line, field, message) in validation_cases() {
        let errors = only_errors(&text);
        assert_eq!(errors.len(), 1, "{text}\n{errors:#?}");
        let e = &errors[0];
        assert_eq!(e.field, field, "{text}\n{e}");
        assert_eq!(e.line, Some(line), "{text}\n{e}");
        assert!(e.column.is_some());
        assert!(e.message.starts_with(message), "{text}\n{}", e.message);
    }
}

#[test]
fn the_same_pod_twice_in_a_file() {
    let one = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: a, image: b}]\n";
    let text = format!("{one}---\n{one}");
    let (pods, errors) = parse(&text);
    assert_eq!(pods.len(), 1);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].line, Some(9));
    assert_eq!(
        errors[0].message,
        "pod default/web is defined twice in this file (first at line 1)"
    );
}

#[test]
fn alias_bomb_is_refused_quickly() {
    let mut text = String::from("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nx0: &x0 [a, a, a, a, a, a, a, a, a, a]\n");
    for i in 1..12 {
        let p = i - 1;
        let refs = vec![format!("*x{p}"); 10].join(", ");
        text.push_str(&format!("x{i}: &x{i} [{refs}]\n"));
    }
    text.push_str("spec:\n  containers: [{name: a, image: b}]\n");
    let started = Instant::now();
    let errors = only_errors(&text);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].message.contains("aliases expand to more than"),
        "{errors:#?}"
    );
    // x4 (line 8) is the first to pass 100 000 nodes: ten aliases of 11 111 each.
    assert_eq!(errors[0].line, Some(8));
}

#[test]
fn small_aliases_and_merge_keys_work() {
    let text = "\
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - &app
    name: a
    image: example.com/app:1.0
    env: &env [{name: A, value: x}]
  - <<: *app
    name: b
    env: *env
";
    let pod = one_pod(text);
    assert_eq!(pod.containers.len(), 2);
    assert_eq!(pod.containers[1].name, "b");
    assert_eq!(pod.containers[1].image, "example.com/app:1.0");
    assert_eq!(pod.containers[1].env, pod.containers[0].env);
}

#[test]
fn oversized_input_is_refused() {
    let mut text = BASE.to_string();
    text.push_str(&"#".repeat(MAX_MANIFEST_BYTES));
    let started = Instant::now();
    let errors = only_errors(&text);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, None);
    assert!(
        errors[0].message.contains("larger than the 10 MiB"),
        "{errors:#?}"
    );
    assert_eq!(
        errors[0].to_string(),
        format!("{FILE}: {}", errors[0].message)
    );

    // Just under the limit is read.
    let mut text = BASE.to_string();
    text.push('#');
    text.push_str(&"x".repeat(MAX_MANIFEST_BYTES - BASE.len() - 1));
    assert_eq!(text.len(), MAX_MANIFEST_BYTES);
    one_pod(&text);
}

#[test]
fn encoding() {
    let mut with_bom = b"\xEF\xBB\xBF".to_vec();
    with_bom.extend_from_slice(BASE.as_bytes());
    let (pods, errors) = parse_file(FILE, &with_bom);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(pods.len(), 1);

    let mut bad = BASE.as_bytes().to_vec();
    bad.extend_from_slice(b"    workingDir: /\xFF\n");
    let (pods, errors) = parse_file(FILE, &bad);
    assert!(pods.is_empty());
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].line, errors[0].column), (Some(9), Some(18)));
    assert!(errors[0].message.contains("UTF-8"));
}

#[test]
fn empty_and_comment_only_files_have_no_pods_and_no_errors() {
    for text in [
        "",
        "\n",
        "# nothing yet\n",
        "---\n",
        "---\n# x\n---\n",
        "...\n",
    ] {
        let (pods, errors) = parse(text);
        assert!(
            pods.is_empty() && errors.is_empty(),
            "{text:?}: {errors:#?}"
        );
    }
}

#[test]
fn error_display() {
    let cases = [
        (
            Some(3),
            Some(5),
            "spec.x",
            "boom",
            "f.yaml:3:5: spec.x: boom",
        ),
        (Some(3), None, "spec.x", "boom", "f.yaml:3: spec.x: boom"),
        (
            Some(3),
            Some(1),
            "",
            "invalid YAML: x",
            "f.yaml:3:1: invalid YAML: x",
        ),
        (None, None, "", "too big", "f.yaml: too big"),
    ];
    for (line, column, field, message, want) in cases {
        let e = ManifestError {
            file: "f.yaml".into(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        };
        assert_eq!(e.to_string(), want);
    }
}

// ---- defaults ------------------------------------------------------------------------

#[test]
fn defaults() {
    let pod = one_pod(&base(
        "    ports:\n    - containerPort: 80\n    livenessProbe:\n      httpGet: {port: 80}\n",
    ));
    assert_eq!(pod.key.namespace, "default");
    assert_eq!(pod.termination_grace_period_secs, 30);
    assert_eq!(pod.restart_policy, RestartPolicy::Always);
    assert_eq!(pod.networks, ["default"]);
    assert_eq!(pod.stage1, Flavor::Default);
    assert_eq!(pod.replace, ReplaceStrategy::StopFirst);
    assert!(!pod.host_network);
    assert_eq!(pod.hostname, None);
    assert_eq!(pod.line, 1);
    let c = &pod.containers[0];
    assert_eq!(c.image_pull_policy, ImagePullPolicy::IfNotPresent);
    assert_eq!(c.ports[0].protocol, "TCP");
    assert_eq!(c.ports[0].host_port, None);
    assert_eq!((c.run_as_user, c.run_as_group), (None, None));
    assert_eq!(
        c.liveness_probe,
        Some(Probe {
            action: ProbeAction::HttpGet {
                path: "/".into(),
                port: 80,
                scheme: "HTTP".into()
            },
            initial_delay_secs: 0,
            period_secs: 10,
            timeout_secs: 1,
            success_threshold: 1,
            failure_threshold: 3,
        })
    );
}

#[test]
fn host_network_means_no_networks() {
    let pod = one_pod(&base("  hostNetwork: true\n"));
    assert!(pod.host_network);
    assert!(pod.networks.is_empty());

    let fly = one_pod(&base("  hostNetwork: true\n").replace(
        "  name: web",
        "  name: web\n  annotations:\n    rkt.io/stage1: fly",
    ));
    assert_eq!(fly.stage1, Flavor::Fly);
    assert!(fly.networks.is_empty());
}

#[test]
fn host_users_false_asks_for_a_user_namespace() {
    let plain = one_pod(BASE);
    assert!(!plain.private_users);
    // Writing out the default changes nothing, not even the hash.
    let explicit = one_pod(&base("  hostUsers: true\n"));
    assert!(!explicit.private_users);
    assert_eq!(explicit.spec_hash, plain.spec_hash);
    let private = one_pod(&base("  hostUsers: false\n"));
    assert!(private.private_users);
    assert_ne!(private.spec_hash, plain.spec_hash);

    let errors = only_errors(&base("  hostUsers: sometimes\n"));
    assert_eq!(errors[0].field, "spec.hostUsers", "{errors:#?}");
    assert_eq!((errors[0].line, errors[0].column), (Some(9), Some(14)));

    let errors = only_errors(&base("  hostUsers: false\n  hostNetwork: true\n").replace(
        "  name: web",
        "  name: web\n  annotations:\n    rkt.io/stage1: fly",
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].field, "spec.hostUsers");
    assert_eq!(errors[0].line, Some(11));
    assert!(errors[0].message.contains("fly"), "{errors:#?}");
}

#[test]
fn networks_annotation() {
    let cases = [
        ("default", vec!["default"]),
        ("none", vec!["none"]),
        ("lan, backend", vec!["lan", "backend"]),
        ("a,b,c", vec!["a", "b", "c"]),
    ];
    for (value, want) in cases {
        let text = BASE.replace(
            "  name: web",
            &format!("  name: web\n  annotations:\n    rkt.io/networks: \"{value}\""),
        );
        assert_eq!(one_pod(&text).networks, want, "{value}");
    }
    for bad in ["default,default", "none,default", "a b", ""] {
        let text = BASE.replace(
            "  name: web",
            &format!("  name: web\n  annotations:\n    rkt.io/networks: \"{bad}\""),
        );
        only_errors(&text);
    }
}

#[test]
fn pull_policy_follows_the_tag_rule() {
    let cases = [
        ("busybox", ImagePullPolicy::Always),
        ("busybox:latest", ImagePullPolicy::Always),
        ("busybox:1.36", ImagePullPolicy::IfNotPresent),
        ("example.com/busybox", ImagePullPolicy::Always),
        ("example.com/busybox:1.36.1", ImagePullPolicy::IfNotPresent),
        ("docker://registry:5000/app", ImagePullPolicy::Always),
        (
            "docker://registry:5000/app:v2",
            ImagePullPolicy::IfNotPresent,
        ),
        (
            "docker://busybox@sha256:0123abcd",
            ImagePullPolicy::IfNotPresent,
        ),
        ("sha512-0123456789abcdef", ImagePullPolicy::IfNotPresent),
        (
            "https://example.com/images/app-1.0.aci",
            ImagePullPolicy::Always,
        ),
        ("/var/lib/images/app.aci", ImagePullPolicy::Always),
        ("file:///srv/app.aci", ImagePullPolicy::Always),
    ];
    for (image, want) in cases {
        assert_eq!(default_pull_policy(image), want, "{image}");
        let pod = one_pod(&BASE.replace("example.com/app:1.0", image));
        assert_eq!(pod.containers[0].image_pull_policy, want, "{image}");
    }
    let never = one_pod(&base("    imagePullPolicy: Never\n"));
    assert_eq!(
        never.containers[0].image_pull_policy,
        ImagePullPolicy::Never
    );
}

#[test]
fn named_probe_ports_resolve_against_the_container_ports() {
    let pod = one_pod(&base(
        "    ports:\n    - {name: http, containerPort: 8080}\n    - {name: admin, containerPort: \
         9000}\n    livenessProbe:\n      tcpSocket: {port: admin}\n    readinessProbe:\n      \
         httpGet: {port: http, path: /ready}\n",
    ));
    let c = &pod.containers[0];
    assert_eq!(
        c.liveness_probe.as_ref().unwrap().action,
        ProbeAction::TcpSocket { port: 9000 }
    );
    assert_eq!(
        c.readiness_probe.as_ref().unwrap().action,
        ProbeAction::HttpGet {
            path: "/ready".into(),
            port: 8080,
            scheme: "HTTP".into()
        }
    );
    let errors = only_errors(&base(
        "    ports:\n    - {name: http, containerPort: 8080}\n    livenessProbe:\n      tcpSocket: \
         {port: htp}\n",
    ));
    assert_eq!(
        errors[0].message,
        "the container has no port named htp (its named ports: http)"
    );
    assert_eq!((errors[0].line, errors[0].column), (Some(12), Some(25)));
}

#[test]
fn pod_security_context_is_the_default_for_containers() {
    let pod = one_pod(&base(
        "    securityContext: {runAsGroup: 5}\n  - name: other\n    image: b\n    \
         securityContext: {runAsUser: 7}\n  securityContext: {runAsUser: 100, runAsGroup: 200}\n",
    ));
    let ids: Vec<_> = pod
        .containers
        .iter()
        .map(|c| (c.run_as_user, c.run_as_group))
        .collect();
    assert_eq!(ids, [(Some(100), Some(5)), (Some(7), Some(200))]);
}

#[test]
fn capabilities_are_canonical() {
    let pod = one_pod(&base(
        "    securityContext:\n      capabilities:\n        add: [net_admin, CAP_NET_ADMIN, \
         SYS_TIME, cap_chown]\n        drop: [ALL, NET_RAW]\n",
    ));
    let c = &pod.containers[0];
    assert_eq!(
        c.capabilities_add,
        ["CAP_CHOWN", "CAP_NET_ADMIN", "CAP_SYS_TIME"]
    );
    assert_eq!(c.capabilities_drop, ["ALL", "CAP_NET_RAW"]);
}

#[test]
fn env_references_are_expanded_like_kubernetes() {
    let pod = one_pod(&base(
        "    env:\n    - {name: HOST, value: db}\n    - {name: URL, value: \"tcp://$(HOST):5432\"}\n    \
         command: [\"echo\", \"$(URL)\", \"$$(URL)\", \"$(MISSING)\", \"$((1 + 2))\"]\n",
    ));
    let c = &pod.containers[0];
    assert_eq!(
        c.env,
        [
            ("HOST".to_string(), "db".to_string()),
            ("URL".to_string(), "tcp://db:5432".to_string())
        ]
    );
    assert_eq!(
        c.command,
        [
            "echo",
            "tcp://db:5432",
            "$(URL)",
            "$(MISSING)",
            "$((1 + 2))"
        ]
    );
}

#[test]
fn expansion_rules() {
    let vars = vec![
        ("A".to_string(), "x".to_string()),
        ("B".to_string(), "$(A)".to_string()),
    ];
    let cases = [
        ("", ""),
        ("plain", "plain"),
        ("$(A)", "x"),
        ("$(A)$(A)", "xx"),
        ("pre-$(A)-post", "pre-x-post"),
        ("$$(A)", "$(A)"),
        ("$$", "$"),
        ("$", "$"),
        ("$A", "$A"),
        ("$(A", "$(A"),
        ("$(C)", "$(C)"),
        ("$(B)", "$(A)"),
        ("$$$(A)", "$x"),
    ];
    for (input, want) in cases {
        assert_eq!(expand_refs(input, &vars), want, "{input}");
    }
}

#[test]
fn quantities_and_requests() {
    let cases = [
        ("{memory: 128Mi, cpu: 500m}", Some(128 << 20), Some(500)),
        ("{memory: 1G, cpu: 2}", Some(1_000_000_000), Some(2000)),
        ("{cpu: 0.25}", None, Some(250)),
        ("{memory: 4096}", Some(4096), None),
        ("{}", None, None),
    ];
    for (limits, memory, cpu) in cases {
        let pod = one_pod(&base(&format!(
            "    resources:\n      limits: {limits}\n      requests: {{cpu: 1m}}\n"
        )));
        let c = &pod.containers[0];
        assert_eq!(
            (c.memory_limit_bytes, c.cpu_millis),
            (memory, cpu),
            "{limits}"
        );
    }
}

// ---- the spec hash ---------------------------------------------------------------------

const HASH_BASE: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  containers:
  - name: app
    image: example.com/app:1.0
    env:
    - name: MODE
      value: prod
    ports:
    - containerPort: 80
      hostPort: 8080
    livenessProbe:
      httpGet:
        port: 80
";

fn hash(text: &str) -> String {
    one_pod(text).spec_hash
}

#[test]
fn hash_is_invariant_under_formatting_order_comments_and_defaults() {
    let want = hash(HASH_BASE);
    let equivalents = [
        // Flow style, other indentation.
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\nspec: {containers: \
         [{name: app, image: example.com/app:1.0, env: [{name: MODE, value: prod}], ports: \
         [{containerPort: 80, hostPort: 8080}], livenessProbe: {httpGet: {port: 80}}}]}\n"
            .to_string(),
        // Keys reordered, quoting, comments.
        "# the web pod\nspec:\n    containers:\n        -   livenessProbe: {httpGet: {port: 80}}  # \
         probe\n            ports: [{hostPort: 8080, containerPort: 80}]\n            env:\n                \
         - value: \"prod\"\n                  name: 'MODE'\n            image: \"example.com/app:1.0\"\n            \
         name: app\nmetadata:\n    labels: {app: web}\n    name: web\nkind: Pod\napiVersion: v1\n"
            .to_string(),
        // JSON.
        r#"{"kind": "Pod", "apiVersion": "v1", "metadata": {"labels": {"app": "web"}, "name": "web"},
            "spec": {"containers": [{"name": "app", "image": "example.com/app:1.0",
            "env": [{"name": "MODE", "value": "prod"}],
            "ports": [{"containerPort": 80, "hostPort": 8080}],
            "livenessProbe": {"httpGet": {"port": 80}}}]}}"#
            .to_string(),
        // Defaults written out.
        HASH_BASE.replace("  name: web\n", "  name: web\n  namespace: default\n  annotations:\n    rkt.io/stage1: default\n    rkt.io/networks: default\n    rkt.io/replace: start-first\n")
            + "  restartPolicy: Always\n  terminationGracePeriodSeconds: 30\n  hostNetwork: false\n  volumes: []\n  initContainers: []\n",
        HASH_BASE
            .replace("      hostPort: 8080\n", "      hostPort: 8080\n      protocol: TCP\n")
            .replace("    image: example.com/app:1.0\n", "    image: example.com/app:1.0\n    imagePullPolicy: IfNotPresent\n    command: []\n    resources: {}\n    securityContext:\n      privileged: false\n      readOnlyRootFilesystem: false\n      capabilities: {add: [], drop: []}\n")
            .replace("        port: 80\n", "        port: 80\n        path: /\n        scheme: HTTP\n      initialDelaySeconds: 0\n      periodSeconds: 10\n      timeoutSeconds: 1\n      successThreshold: 1\n      failureThreshold: 3\n"),
        // Inside a List, in a multi-document file.
        format!("---\napiVersion: v1\nkind: List\nitems:\n- {}", HASH_BASE.replace('\n', "\n  ")),
    ];
    for text in equivalents {
        assert_eq!(hash(&text), want, "{text}");
    }
}

#[test]
fn hash_changes_with_any_semantic_change() {
    let base_hash = hash(HASH_BASE);
    let changes = [
        ("image: example.com/app:1.0", "image: example.com/app:1.1"),
        ("value: prod", "value: dev"),
        ("name: MODE", "name: MODES"),
        ("app: web", "app: api"),
        ("  labels:\n", "  labels:\n    tier: front\n"),
        ("  name: web\n", "  name: web\n  namespace: other\n"),
        ("  name: web\n", "  name: web\n  annotations: {owner: me}\n"),
        (
            "  name: web\n",
            "  name: web\n  annotations: {rkt.io/networks: lan}\n",
        ),
        ("hostPort: 8080", "hostPort: 8081"),
        (
            "    - containerPort: 80\n",
            "    - containerPort: 80\n      protocol: UDP\n",
        ),
        (
            "        port: 80\n",
            "        port: 80\n      periodSeconds: 11\n",
        ),
        ("  - name: app\n", "  - name: app\n    args: [-v]\n"),
        (
            "  - name: app\n",
            "  - name: app\n    imagePullPolicy: Always\n",
        ),
        ("spec:\n", "spec:\n  restartPolicy: Never\n"),
        ("spec:\n", "spec:\n  terminationGracePeriodSeconds: 5\n"),
    ];
    let mut seen = vec![base_hash.clone()];
    for (from, to) in changes {
        assert!(HASH_BASE.contains(from), "{from}");
        let text = HASH_BASE.replacen(from, to, 1);
        let h = hash(&text);
        assert!(!seen.contains(&h), "{from} -> {to} did not change the hash");
        seen.push(h);
    }
    // The file a pod is read from is not part of it.
    let (pods, _) = parse_file("other/place.yml", HASH_BASE.as_bytes());
    assert_eq!(pods[0].spec_hash, base_hash);
}

// ---- file names and examples -----------------------------------------------------------

#[test]
fn manifest_file_names() {
    let cases = [
        ("web.yaml", true),
        ("web.yml", true),
        ("web.json", true),
        (".web.yaml", false),
        ("web.yaml.swp", false),
        ("web.yaml~", false),
        ("README.md", false),
        (".yaml", false),
        ("yaml", false),
    ];
    for (name, want) in cases {
        assert_eq!(is_manifest_file_name(name), want, "{name}");
    }
}

#[test]
fn example_web() {
    let pod = one_pod_from(
        "examples/pods/web.yaml",
        include_str!("../../../examples/pods/web.yaml"),
    );
    assert_eq!(pod.key.to_string(), "default/web");
    let c = &pod.containers[0];
    assert_eq!(c.image, "example.com/busybox");
    assert_eq!(
        c.command,
        ["/usr/sbin/httpd", "-f", "-p", "80", "-h", "/www"]
    );
    assert_eq!(
        c.ports,
        [ContainerPort {
            name: Some("http".into()),
            container_port: 80,
            host_port: Some(8080),
            protocol: "TCP".into()
        }]
    );
    assert_eq!(
        c.readiness_probe.as_ref().unwrap().action,
        ProbeAction::HttpGet {
            path: "/index.html".into(),
            port: 80,
            scheme: "HTTP".into()
        }
    );
    assert_eq!(pod.networks, ["default"]);
}

#[test]
fn example_shared_volume() {
    let pod = one_pod_from(
        "examples/pods/shared-volume.yaml",
        include_str!("../../../examples/pods/shared-volume.yaml"),
    );
    assert_eq!(
        pod.volumes,
        [DesiredVolume::EmptyDir {
            name: "shared".into()
        }]
    );
    let names: Vec<_> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["writer", "reader"]);
    assert!(
        pod.containers[0].args[0].contains("$((i + 1))"),
        "shell arithmetic survives"
    );
    assert!(!pod.containers[0].volume_mounts[0].read_only);
    assert!(pod.containers[1].volume_mounts[0].read_only);
}

#[test]
fn example_job() {
    let pod = one_pod_from(
        "examples/pods/job.yaml",
        include_str!("../../../examples/pods/job.yaml"),
    );
    assert_eq!(pod.restart_policy, RestartPolicy::OnFailure);
    let c = &pod.containers[0];
    assert_eq!(c.env, [("STEPS".to_string(), "3".to_string())]);
    assert!(c.args[0].contains("$(seq 1 \"$STEPS\")"));
}

#[track_caller]
fn one_pod_from(file: &str, text: &str) -> DesiredPod {
    let (mut pods, errors) = parse_file(file, text.as_bytes());
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(pods.len(), 1);
    let pod = pods.remove(0);
    assert_eq!(pod.file, file);
    pod
}

#[test]
fn errors_are_capped_per_file() {
    let mut text = base("");
    for i in 0..250 {
        text.push_str(&format!("unknown{i}: 1\n"));
    }
    let errors = only_errors(&text);
    assert_eq!(errors.len(), 101);
    assert_eq!(errors[0].field, "unknown0");
    assert_eq!(errors[0].line, Some(9));
    assert_eq!(errors[100].line, None);
    assert_eq!(errors[100].message, "150 more errors not shown");
}

#[test]
fn long_values_are_cut_short_in_messages() {
    let long = "X".repeat(100_000);
    let errors = only_errors(&BASE.replace("name: web", &format!("name: {long}")));
    assert_eq!(errors.len(), 1);
    assert!(errors[0].message.len() < 300, "{}", errors[0].message.len());
    assert!(
        errors[0]
            .message
            .starts_with(&format!("\"{}\"... is not a valid name", "X".repeat(100))),
        "{}",
        errors[0].message
    );

    let errors = only_errors(&base(&format!("    {long}: 1\n")));
    assert!(errors[0].field.len() < 500 && errors[0].message.len() < 500);
}

#[test]
fn large_mappings_are_not_quadratic() {
    let text = BASE.replace("  name: web\n", "  name: web\n  labels:\n");
    let labels: String = (0..50_000).map(|i| format!("    k{i}: v\n")).collect();
    let text = text.replace("  labels:\n", &format!("  labels:\n{labels}"));
    let started = Instant::now();
    let pod = one_pod(&text);
    assert_eq!(pod.labels.len(), 50_000);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn crlf_line_endings() {
    let text = base("    imagePullPolcy: Always\n").replace('\n', "\r\n");
    let errors = only_errors(&text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!((errors[0].line, errors[0].column), (Some(9), Some(5)));
    let text = format!("{BASE}---\r\n{BASE}").replace('\n', "\r\n");
    let (pods, errors) = parse(&text.replace("\r\r\n", "\r\n"));
    assert_eq!(pods.len(), 1);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!((errors[0].line, errors[0].column), (Some(13), Some(9)));
}

// ---- seccomp ---------------------------------------------------------------------------

#[test]
fn seccomp_profiles_from_fields_and_annotation() {
    let seccomp = |p: &DesiredPod| -> Vec<Seccomp> {
        p.init_containers
            .iter()
            .chain(&p.containers)
            .map(|c| c.seccomp)
            .collect()
    };
    let two = "  - name: side\n    image: example.com/side:1.0\n";
    assert_eq!(seccomp(&one_pod(&base(two))), [Seccomp::Default; 2]);

    // The annotation covers every container that says nothing.
    let annotated = base(two).replace(
        "  name: web\n",
        "  name: web\n  annotations: {rkt.io/seccomp: unconfined}\n",
    );
    assert_eq!(seccomp(&one_pod(&annotated)), [Seccomp::Unconfined; 2]);

    // The pod's field wins over the annotation, a container's over the pod's.
    let fields = annotated.replace(
        "spec:\n",
        "spec:\n  securityContext:\n    seccompProfile: {type: RuntimeDefault}\n",
    ) + "    securityContext:\n      seccompProfile: {type: Unconfined}\n";
    assert_eq!(
        seccomp(&one_pod(&fields)),
        [Seccomp::Default, Seccomp::Unconfined]
    );

    // Writing the default out changes nothing, not even the hash; unconfined does.
    let plain = one_pod(&base(""));
    let explicit = one_pod(
        &base("    securityContext:\n      seccompProfile: {type: RuntimeDefault}\n").replace(
            "  name: web\n",
            "  name: web\n  annotations: {rkt.io/seccomp: default}\n",
        ),
    );
    assert_eq!(explicit.spec_hash, plain.spec_hash);
    let open = one_pod(&base(
        "    securityContext:\n      seccompProfile: {type: Unconfined}\n",
    ));
    assert_ne!(open.spec_hash, plain.spec_hash);
}

#[test]
fn seccomp_errors_name_file_line_and_field() {
    let errors = only_errors(&base("").replace(
        "spec:\n",
        "spec:\n  securityContext:\n    seccompProfile:\n      type: Localhost\n      \
         localhostProfile: profiles/p.json\n",
    ));
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(
        shown.iter().any(|e| e.starts_with(
            "pods/test.yaml:8:13: spec.securityContext.seccompProfile.type: type Localhost \
             is not supported"
        )),
        "{shown:#?}"
    );
    assert!(
        shown.iter().any(|e| e.contains(
            "spec.securityContext.seccompProfile.localhostProfile: localhostProfile is not \
             supported"
        )),
        "{shown:#?}"
    );

    let errors = only_errors(&base("    securityContext:\n      seccompProfile: {}\n"));
    assert_eq!(
        errors[0].field,
        "spec.containers[0].securityContext.seccompProfile.type"
    );
    assert!(
        errors[0].message.contains("type is required"),
        "{errors:#?}"
    );

    let errors = only_errors(&base(
        "    securityContext:\n      seccompProfile: {type: Strict}\n",
    ));
    assert!(
        errors[0]
            .message
            .contains("unknown seccompProfile type Strict"),
        "{errors:#?}"
    );

    let errors = only_errors(&base("").replace(
        "  name: web\n",
        "  name: web\n  annotations: {rkt.io/seccomp: runtime/default}\n",
    ));
    assert_eq!(errors[0].field, "metadata.annotations[rkt.io/seccomp]");
    assert!(
        errors[0]
            .message
            .contains("unknown seccomp profile runtime/default: use default or unconfined"),
        "{errors:#?}"
    );
    let errors = only_errors(&base("").replace(
        "  name: web\n",
        "  name: web\n  annotations: {rkt.io/secomp: unconfined}\n",
    ));
    assert!(
        errors[0].message.contains("did you mean rkt.io/seccomp?"),
        "{errors:#?}"
    );
}

// ---- image privileges ------------------------------------------------------------------

#[test]
fn image_privileges_annotation() {
    let plain = one_pod(&base(""));
    assert!(!plain.image_privileges);
    let with = |v: &str| {
        base("").replace(
            "  name: web\n",
            &format!("  name: web\n  annotations: {{rkt.io/image-privileges: {v}}}\n"),
        )
    };
    let allowed = one_pod(&with("allow"));
    assert!(allowed.image_privileges);
    assert_ne!(
        allowed.spec_hash, plain.spec_hash,
        "allowing changes what runs"
    );
    let denied = one_pod(&with("deny"));
    assert!(!denied.image_privileges);
    assert_eq!(denied.spec_hash, plain.spec_hash, "the default written out");

    let errors = only_errors(&with("yes"));
    assert_eq!(
        errors[0].field,
        "metadata.annotations[rkt.io/image-privileges]"
    );
    assert!(
        errors[0]
            .message
            .contains("unknown image privileges choice yes: use deny or allow"),
        "{errors:#?}"
    );
    let errors = only_errors(&base("").replace(
        "  name: web\n",
        "  name: web\n  annotations: {rkt.io/image-privilege: allow}\n",
    ));
    assert!(
        errors[0]
            .message
            .contains("did you mean rkt.io/image-privileges?"),
        "{errors:#?}"
    );
}

// ---- placement: nodeName, nodeSelector, affinity ------------------------------------

fn node(name: &str, labels: &[(&str, &str)]) -> Node {
    Node::new(
        name,
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn req(key: &str, operator: NodeOperator, values: &[&str]) -> NodeRequirement {
    NodeRequirement {
        key: key.to_string(),
        operator,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

#[test]
fn node_requirement_operators() {
    use NodeOperator::*;
    // (requirement, the label's value on the node, matches)
    let cases: &[(NodeRequirement, Option<&str>, bool)] = &[
        (req("disk", In, &["ssd", "nvme"]), Some("ssd"), true),
        (req("disk", In, &["ssd"]), Some("hdd"), false),
        (req("disk", In, &["ssd"]), None, false),
        (req("disk", NotIn, &["ssd"]), Some("hdd"), true),
        (req("disk", NotIn, &["ssd"]), Some("ssd"), false),
        (req("disk", NotIn, &["ssd"]), None, true),
        (req("disk", Exists, &[]), Some(""), true),
        (req("disk", Exists, &[]), None, false),
        (req("disk", DoesNotExist, &[]), None, true),
        (req("disk", DoesNotExist, &[]), Some("ssd"), false),
        (req("cores", Gt, &["4"]), Some("8"), true),
        (req("cores", Gt, &["4"]), Some("4"), false),
        (req("cores", Gt, &["4"]), Some("many"), false),
        (req("cores", Gt, &["4"]), None, false),
        (req("cores", Gt, &["-1"]), Some("0"), true),
        (req("cores", Lt, &["4"]), Some("3"), true),
        (req("cores", Lt, &["4"]), Some("4"), false),
        (req("cores", Lt, &["4"]), None, false),
    ];
    for (r, actual, want) in cases {
        assert_eq!(r.matches(*actual), *want, "{r:?} on {actual:?}");
    }
}

#[test]
fn placement_matching() {
    use NodeOperator::*;
    let host = node("h1", &[("disk", "ssd"), ("zone", "a")]);
    let term = |exprs: Vec<NodeRequirement>, fields: Vec<NodeRequirement>| NodeSelectorTerm {
        match_expressions: exprs,
        match_fields: fields,
    };
    let required = |terms: Vec<NodeSelectorTerm>| Placement {
        required: Some(terms),
        ..Placement::default()
    };
    // (placement, runs on h1, words of the message)
    let cases: Vec<(Placement, bool, &str)> = vec![
        (Placement::default(), true, ""),
        (
            Placement {
                node_name: Some("h1".into()),
                ..Placement::default()
            },
            true,
            "",
        ),
        (
            Placement {
                node_name: Some("h2".into()),
                ..Placement::default()
            },
            false,
            "spec.nodeName is h2, this host is h1",
        ),
        (
            Placement {
                node_selector: BTreeMap::from([
                    ("disk".into(), "ssd".into()),
                    ("kubernetes.io/hostname".into(), "h1".into()),
                    ("kubernetes.io/os".into(), "linux".into()),
                ]),
                ..Placement::default()
            },
            true,
            "",
        ),
        (
            Placement {
                node_selector: BTreeMap::from([("disk".into(), "hdd".into())]),
                ..Placement::default()
            },
            false,
            "spec.nodeSelector wants disk=hdd, this host has disk=ssd",
        ),
        (
            Placement {
                node_selector: BTreeMap::from([("gpu".into(), "yes".into())]),
                ..Placement::default()
            },
            false,
            "this host has no label gpu",
        ),
        // Terms are ORed.
        (
            required(vec![
                term(vec![req("zone", In, &["b"])], vec![]),
                term(vec![req("zone", In, &["a"])], vec![]),
            ]),
            true,
            "",
        ),
        // Expressions of a term are ANDed.
        (
            required(vec![term(
                vec![req("zone", In, &["a"]), req("disk", NotIn, &["ssd"])],
                vec![],
            )]),
            false,
            "none of its 1 nodeSelectorTerms matches this host (h1)",
        ),
        // An empty term matches nothing.
        (
            required(vec![term(vec![], vec![])]),
            false,
            "nodeSelectorTerms",
        ),
        (
            required(vec![term(vec![], vec![req("metadata.name", In, &["h1"])])]),
            true,
            "",
        ),
        (
            required(vec![term(
                vec![req("disk", Exists, &[])],
                vec![req("metadata.name", NotIn, &["h1"])],
            )]),
            false,
            "nodeSelectorTerms",
        ),
        // All three must hold.
        (
            Placement {
                node_name: Some("h1".into()),
                node_selector: BTreeMap::from([("disk".into(), "ssd".into())]),
                required: Some(vec![term(vec![req("zone", DoesNotExist, &[])], vec![])]),
            },
            false,
            "requiredDuringSchedulingIgnoredDuringExecution",
        ),
    ];
    for (placement, runs, words) in cases {
        let got = placement.mismatch(&host);
        assert_eq!(got.is_none(), runs, "{placement:?}: {got:?}");
        if let Some(message) = got {
            assert!(message.contains(words), "{message:?} lacks {words:?}");
        }
    }
}

#[test]
fn default_node_labels() {
    let n = node("h1", &[("kubernetes.io/os", "custom"), ("disk", "ssd")]);
    assert_eq!(n.labels["kubernetes.io/hostname"], "h1");
    assert_eq!(n.labels["kubernetes.io/os"], "custom");
    assert_eq!(n.labels["disk"], "ssd");
    assert_eq!(
        n.labels["kubernetes.io/arch"],
        kube_arch(std::env::consts::ARCH)
    );
    for (rust, kube) in [
        ("x86_64", "amd64"),
        ("aarch64", "arm64"),
        ("riscv64", "riscv64"),
    ] {
        assert_eq!(kube_arch(rust), kube);
    }
}

#[test]
fn placement_fields_are_read() {
    let pod = one_pod(&base(
        "  nodeName: h1
  nodeSelector:
    disk: ssd
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: zone, operator: In, values: [a, b]}
          - {key: cores, operator: Gt, values: [\"4\"]}
          - {key: gpu, operator: DoesNotExist}
        - matchFields:
          - {key: metadata.name, operator: NotIn, values: [h2]}
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 10
        preference:
          matchExpressions:
          - {key: zone, operator: In, values: [a]}
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector:
          matchLabels: {app: web}
        topologyKey: kubernetes.io/hostname
    podAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 1
        podAffinityTerm:
          labelSelector:
            matchExpressions:
            - {key: app, operator: Exists}
          topologyKey: zone
",
    ));
    use NodeOperator::*;
    assert_eq!(
        pod.placement,
        Placement {
            node_name: Some("h1".into()),
            node_selector: BTreeMap::from([("disk".into(), "ssd".into())]),
            required: Some(vec![
                NodeSelectorTerm {
                    match_expressions: vec![
                        req("zone", In, &["a", "b"]),
                        req("cores", Gt, &["4"]),
                        req("gpu", DoesNotExist, &[]),
                    ],
                    match_fields: vec![],
                },
                NodeSelectorTerm {
                    match_expressions: vec![],
                    match_fields: vec![req("metadata.name", NotIn, &["h2"])],
                },
            ]),
        }
    );
    // Where a pod runs is not what runs: the hash ignores it.
    assert_eq!(pod.spec_hash, one_pod(BASE).spec_hash);
}

#[test]
fn placement_errors() {
    let term = |expr: &str| {
        format!(
            "  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - {expr}
"
        )
    };
    // (extra spec lines, field, words of the message)
    let cases = [
        ("  nodeName: Not_A_Name\n".to_string(), "spec.nodeName", "is not a valid name"),
        ("  nodeSelector: [a]\n".to_string(), "spec.nodeSelector", "expected a mapping"),
        (
            "  nodeSelector: {\"bad key!\": x}\n".to_string(),
            "spec.nodeSelector[bad key!]",
            "is not a valid key",
        ),
        (
            term("matchExpressions: [{key: a, operator: Has, values: [x]}]"),
            "matchExpressions[0].operator",
            "unknown operator Has",
        ),
        (
            term("matchExpressions: [{key: a, operator: In}]"),
            "matchExpressions[0].values",
            "must not be empty with In or NotIn",
        ),
        (
            term("matchExpressions: [{key: a, operator: Exists, values: [x]}]"),
            "matchExpressions[0].values",
            "must be empty with Exists",
        ),
        (
            term("matchExpressions: [{key: a, operator: Gt, values: [x]}]"),
            "matchExpressions[0].values",
            "exactly one value, an integer",
        ),
        (
            term("matchExpressions: [{key: a, operator: Lt, values: [\"1\", \"2\"]}]"),
            "matchExpressions[0].values",
            "exactly one value, an integer",
        ),
        (
            term("matchExpressions: [{operator: Exists}]"),
            "matchExpressions[0].key",
            "key is required",
        ),
        (
            term("matchFields: [{key: metadata.labels, operator: In, values: [x]}]"),
            "matchFields[0].key",
            "only metadata.name",
        ),
        (
            term("matchFields: [{key: metadata.name, operator: Exists}]"),
            "matchFields[0].operator",
            "In or NotIn (matchFields)",
        ),
        (
            term("matchFields: [{key: metadata.name, operator: In, values: [a, b]}]"),
            "matchFields[0].values",
            "exactly one value",
        ),
        (
            term("matchExpresions: []"),
            "nodeSelectorTerms[0].matchExpresions",
            "did you mean matchExpressions?",
        ),
        (
            "  affinity:\n    nodeAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n      - {weight: 0, preference: {}}\n".to_string(),
            "preferredDuringSchedulingIgnoredDuringExecution[0].weight",
            "between 1 and 100",
        ),
        (
            "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchLabels: {app: web}}\n".to_string(),
            "requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey",
            "topologyKey is required",
        ),
        (
            "  affinity:\n    podAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - topologyKey: zone\n        labelSelector: {matchExpressions: [{key: a, operator: Gt, values: [\"1\"]}]}\n".to_string(),
            "labelSelector.matchExpressions[0].operator",
            "In, NotIn, Exists or DoesNotExist",
        ),
        (
            "  affinity:\n    nodeAfinity: {}\n".to_string(),
            "spec.affinity.nodeAfinity",
            "did you mean nodeAffinity?",
        ),
    ];
    for (extra, field, words) in cases {
        let errors = only_errors(&base(&extra));
        assert!(
            errors
                .iter()
                .any(|e| e.field.ends_with(field) && e.message.contains(words) && e.line.is_some()),
            "{extra}: want {field}: {words}, got {errors:#?}"
        );
    }
}

#[test]
fn node_files() {
    let NodeFile { name, labels } = parse_node_file(
        "node.yaml",
        b"# this host\nname: edge-1\nlabels:\n  disk: ssd\n  topology.kubernetes.io/zone: a\n",
    )
    .unwrap();
    assert_eq!(name.as_deref(), Some("edge-1"));
    assert_eq!(
        labels,
        BTreeMap::from([
            ("disk".to_string(), "ssd".to_string()),
            ("topology.kubernetes.io/zone".to_string(), "a".to_string()),
        ])
    );
    assert_eq!(
        parse_node_file("node.yaml", b"").unwrap(),
        NodeFile::default()
    );
    assert_eq!(
        parse_node_file("node.yaml", b"labels: {a: b}\n")
            .unwrap()
            .name,
        None
    );
    // (text, line, words of the message)
    let cases: [(&[u8], Option<usize>, &str); 6] = [
        (
            b"name: Bad_Name\n",
            Some(1),
            "name: \"Bad_Name\" is not a valid name",
        ),
        (
            b"name: h1\nlables: {}\n",
            Some(2),
            "lables: unknown field lables; did you mean labels?",
        ),
        (
            b"name: h1\nlabels:\n  disk: 3\n",
            Some(3),
            "labels[disk]: expected a string, found number 3",
        ),
        (b"name: [h1]\n", Some(1), "name: expected a string"),
        (b"name: h1\n  bad: indent\n", Some(2), "invalid YAML"),
        (b"\xff", None, "not valid UTF-8"),
    ];
    for (text, line, words) in cases {
        let errors = parse_node_file("conf/node.yaml", text).unwrap_err();
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            errors
                .iter()
                .any(|e| e.line == line && e.to_string().contains(words)),
            "{text:?}: want line {line:?} {words:?}, got {shown:#?}"
        );
        assert!(
            shown.iter().all(|s| s.starts_with("conf/node.yaml")),
            "{shown:?}"
        );
    }
}

#[test]
fn host_aliases_parse_in_order() {
    let pod = one_pod(&base(
        "  hostAliases:\n  - ip: 10.1.2.3\n    hostnames: [foo.local, bar]\n  - ip: \"fd00::1\"\n    hostnames:\n    - six\n",
    ));
    assert_eq!(
        pod.host_aliases,
        vec![
            HostAlias {
                ip: "10.1.2.3".into(),
                hostnames: strings(&["foo.local", "bar"]),
            },
            HostAlias {
                ip: "fd00::1".into(),
                hostnames: strings(&["six"]),
            },
        ]
    );
    // Absent and empty are the same pod, with the hash of a pod without the field.
    let plain = one_pod(&base(""));
    assert!(plain.host_aliases.is_empty());
    assert_eq!(
        one_pod(&base("  hostAliases: []\n")).spec_hash,
        plain.spec_hash
    );
    assert_ne!(pod.spec_hash, plain.spec_hash);
}

#[test]
fn host_alias_errors_name_line_and_field() {
    let cases = [
        (
            "  hostAliases:\n  - ip: 10.1.2\n    hostnames: [a]\n",
            (10, 9),
            "spec.hostAliases[0].ip",
            "\"10.1.2\" is not an IP address",
        ),
        (
            "  hostAliases:\n  - ip: 10.1.2.3\n    hostnames: []\n",
            (11, 16),
            "spec.hostAliases[0].hostnames",
            "a host alias needs at least one hostname",
        ),
        (
            "  hostAliases:\n  - ip: 10.1.2.3\n    hostnames:\n    - ok\n    - Bad_Name\n",
            (13, 7),
            "spec.hostAliases[0].hostnames[1]",
            "is not a valid name",
        ),
        (
            "  hostAliases:\n  - hostnames: [a]\n",
            (10, 5),
            "spec.hostAliases[0].ip",
            "ip is required",
        ),
        (
            "  hostAliases:\n  - ip: 10.1.2.3\n",
            (10, 5),
            "spec.hostAliases[0].hostnames",
            "hostnames is required",
        ),
        (
            "  hostAliases:\n  - ip: 10.1.2.3\n    hostnames: [a]\n    hostname: b\n",
            (12, 5),
            "spec.hostAliases[0].hostname",
            "unknown field hostname; did you mean hostnames?",
        ),
    ];
    for (extra, (line, column), field, message) in cases {
        let errors = only_errors(&base(extra));
        assert_eq!(errors.len(), 1, "{extra}: {errors:#?}");
        let e = &errors[0];
        assert_eq!((e.line, e.column), (Some(line), Some(column)), "{extra}");
        assert_eq!(e.field, field, "{extra}");
        assert!(e.message.contains(message), "{extra}: {}", e.message);
    }
}

#[test]
fn dns_policy_none_takes_the_dns_config_and_other_policies_the_host() {
    let pod = one_pod(&base(
        "  dnsPolicy: None\n  dnsConfig:\n    nameservers: [192.0.2.53, \"2001:db8::53\"]\n    searches: [ns1.svc.example, example.]\n    options:\n    - name: ndots\n      value: \"2\"\n    - name: edns0\n    - name: ndots\n      value: \"5\"\n",
    ));
    assert_eq!(
        pod.dns,
        Some(PodDns {
            nameservers: strings(&["192.0.2.53", "2001:db8::53"]),
            searches: strings(&["ns1.svc.example", "example."]),
            options: strings(&["edns0", "ndots:5"]),
        })
    );
    let plain = one_pod(&base(""));
    assert_eq!(plain.dns, None);
    assert_ne!(pod.spec_hash, plain.spec_hash);
    for policy in ["ClusterFirst", "ClusterFirstWithHostNet", "Default"] {
        let p = one_pod(&base(&format!("  dnsPolicy: {policy}\n")));
        assert_eq!(p.dns, None, "{policy}");
        assert_eq!(
            p.spec_hash, plain.spec_hash,
            "{policy}: the host's resolver, as without it"
        );
    }
}

#[test]
fn dns_errors_name_line_and_field() {
    let cfg = "  dnsPolicy: None\n  dnsConfig:\n";
    let cases = [
        (
            "  dnsPolicy: Cluster\n".to_string(),
            (9, 14),
            "spec.dnsPolicy",
            "unknown dnsPolicy Cluster",
        ),
        (
            "  dnsPolicy: None\n".to_string(),
            (9, 14),
            "spec.dnsPolicy",
            "dnsPolicy: None needs a dnsConfig with at least one nameserver",
        ),
        (
            "  dnsConfig:\n    nameservers: [192.0.2.1]\n".to_string(),
            (10, 5),
            "spec.dnsConfig",
            "dnsConfig is only supported with dnsPolicy: None",
        ),
        (
            format!("{cfg}    nameservers: [192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4]\n"),
            (11, 18),
            "spec.dnsConfig.nameservers",
            "4 nameservers: at most 3",
        ),
        (
            format!("{cfg}    nameservers: [192.0.2.300]\n"),
            (11, 19),
            "spec.dnsConfig.nameservers[0]",
            "\"192.0.2.300\" is not an IP address",
        ),
        (
            format!("{cfg}    searches: [a.example]\n"),
            (11, 5),
            "spec.dnsConfig.nameservers",
            "at least one nameserver",
        ),
        (
            format!(
                "{cfg}    nameservers: [192.0.2.1]\n    searches: [{}]\n",
                vec!["a"; 33].join(", ")
            ),
            (12, 15),
            "spec.dnsConfig.searches",
            "33 search domains: at most 32",
        ),
        (
            format!(
                "{cfg}    nameservers: [192.0.2.1]\n    searches: [{}]\n",
                vec![format!("{}.b", "a".repeat(63)); 32].join(", ")
            ),
            (12, 15),
            "spec.dnsConfig.searches",
            "at most 2048",
        ),
        (
            format!("{cfg}    nameservers: [192.0.2.1]\n    searches: [Bad_Domain]\n"),
            (12, 16),
            "spec.dnsConfig.searches[0]",
            "is not a valid name",
        ),
        (
            format!("{cfg}    nameservers: [192.0.2.1]\n    options:\n    - value: \"1\"\n"),
            (13, 7),
            "spec.dnsConfig.options[0].name",
            "name is required",
        ),
        (
            format!("{cfg}    nameservers: [192.0.2.1]\n    options:\n    - name: a b\n"),
            (13, 13),
            "spec.dnsConfig.options[0].name",
            "is not an option name",
        ),
    ];
    for (extra, (line, column), field, message) in cases {
        let errors = only_errors(&base(&extra));
        assert_eq!(errors.len(), 1, "{extra}: {errors:#?}");
        let e = &errors[0];
        assert_eq!((e.line, e.column), (Some(line), Some(column)), "{extra}");
        assert_eq!(e.field, field, "{extra}");
        assert!(e.message.contains(message), "{extra}: {}", e.message);
    }
}
