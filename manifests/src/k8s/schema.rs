//! Which fields of each Kubernetes object this runtime reads, which known fields it
//! refuses (and why), and "did you mean" suggestions for the rest.

/// A known Kubernetes field that this runtime does not honour.
pub(crate) struct Unsupported {
    pub name: &'static str,
    /// Completes "`name` is not supported: ...".
    pub why: &'static str,
    pub accept: Accept,
    /// Values not accepted by `accept` are ignored with a warning (`true`) or refused
    /// with an error (`false`).
    pub ignored: bool,
}

/// Values of an unsupported field that are harmless (the Kubernetes default, or empty),
/// so that manifests written by `kubectl ... -o yaml` still load.
#[derive(Clone, Copy)]
pub(crate) enum Accept {
    Never,
    /// null, `{}`, `[]` or `""`.
    Empty,
    /// This exact scalar (as written, e.g. `ClusterFirst` or `true`).
    Value(&'static str),
    /// Anything: the field has no meaning here (only List metadata).
    Any,
}

pub(crate) struct Schema {
    /// What the object is, for messages ("container", "volume").
    pub what: &'static str,
    pub fields: &'static [&'static str],
    pub unsupported: &'static [Unsupported],
}

const fn no(name: &'static str, why: &'static str) -> Unsupported {
    Unsupported {
        name,
        why,
        accept: Accept::Never,
        ignored: false,
    }
}

const fn unless(name: &'static str, accept: Accept, why: &'static str) -> Unsupported {
    Unsupported {
        name,
        why,
        accept,
        ignored: false,
    }
}

/// A field a single host has nothing to do with: any value loads, with a warning
/// ("`name` is ignored: `why`"), unless it is empty.
const fn ignore(name: &'static str, why: &'static str) -> Unsupported {
    ignore_unless(name, Accept::Empty, why)
}

/// Like [`ignore`], silent also for the `accept`ed value (the Kubernetes default).
const fn ignore_unless(name: &'static str, accept: Accept, why: &'static str) -> Unsupported {
    Unsupported {
        name,
        why,
        accept,
        ignored: true,
    }
}

const SCHEDULING: &str = "scheduling does not apply: the pod runs on the host that reads the file";
const API_SERVER: &str = "it is set by the Kubernetes API server; remove it";
const NO_API: &str = "there is no Kubernetes API server here";
const SET_BY_API_SERVER: &str = "it is set by the Kubernetes API server";
const NO_TOKEN: &str = "there is no API server, so no service account token to mount";

pub(crate) static POD: Schema = Schema {
    what: "Pod",
    fields: &["apiVersion", "kind", "metadata", "spec"],
    unsupported: &[ignore(
        "status",
        "status is written by the runtime, not read from the manifest",
    )],
};

pub(crate) static LIST: Schema = Schema {
    what: "List",
    fields: &["apiVersion", "kind", "metadata", "items"],
    unsupported: &[],
};

pub(crate) static LIST_METADATA: Schema = Schema {
    what: "List metadata",
    fields: &[],
    unsupported: &[
        unless("resourceVersion", Accept::Any, API_SERVER),
        unless("selfLink", Accept::Any, API_SERVER),
        unless("continue", Accept::Any, API_SERVER),
    ],
};

pub(crate) static METADATA: Schema = Schema {
    what: "metadata",
    fields: &["name", "namespace", "labels", "annotations"],
    unsupported: &[
        no(
            "generateName",
            "a manifest pod needs a fixed identity; set name instead",
        ),
        ignore("uid", "every pod gets its own UUID from the runtime"),
        ignore("resourceVersion", SET_BY_API_SERVER),
        ignore("generation", SET_BY_API_SERVER),
        ignore("selfLink", SET_BY_API_SERVER),
        ignore("managedFields", SET_BY_API_SERVER),
        ignore("creationTimestamp", SET_BY_API_SERVER),
        no("deletionTimestamp", API_SERVER),
        no("deletionGracePeriodSeconds", API_SERVER),
        ignore(
            "ownerReferences",
            "there is no API server to collect the pod with its owner",
        ),
        no("finalizers", NO_API),
    ],
};

pub(crate) static POD_SPEC: Schema = Schema {
    what: "Pod spec",
    fields: &[
        "containers",
        "initContainers",
        "volumes",
        "restartPolicy",
        "terminationGracePeriodSeconds",
        "hostNetwork",
        "hostUsers",
        "hostname",
        "hostAliases",
        "dnsPolicy",
        "dnsConfig",
        "securityContext",
        "nodeName",
        "nodeSelector",
        "affinity",
    ],
    unsupported: &[
        ignore("tolerations", SCHEDULING),
        ignore("topologySpreadConstraints", SCHEDULING),
        ignore("schedulingGates", SCHEDULING),
        ignore_unless(
            "schedulerName",
            Accept::Value("default-scheduler"),
            SCHEDULING,
        ),
        ignore("priorityClassName", SCHEDULING),
        ignore_unless("priority", Accept::Value("0"), SCHEDULING),
        ignore("preemptionPolicy", SCHEDULING),
        ignore("overhead", SCHEDULING),
        ignore("readinessGates", NO_API),
        ignore("os", SCHEDULING),
        ignore("serviceAccountName", NO_TOKEN),
        ignore("serviceAccount", NO_TOKEN),
        ignore_unless(
            "automountServiceAccountToken",
            Accept::Value("false"),
            NO_TOKEN,
        ),
        ignore(
            "imagePullSecrets",
            "registry credentials come from the runtime's auth configuration (auth.d)",
        ),
        no(
            "runtimeClassName",
            "choose the stage1 flavor with the rkt.io/stage1 annotation",
        ),
        no("subdomain", "there is no cluster DNS; use hostname"),
        no("hostnameOverride", "use hostname"),
        no("setHostnameAsFQDN", "there is no cluster DNS; use hostname"),
        ignore_unless(
            "enableServiceLinks",
            Accept::Value("false"),
            "there are no Kubernetes services to link",
        ),
        no(
            "hostPID",
            "the runtime gives every pod its own PID namespace",
        ),
        no(
            "hostIPC",
            "the runtime gives every pod its own IPC namespace",
        ),
        no(
            "shareProcessNamespace",
            "the apps of a pod always share one PID namespace",
        ),
        no(
            "activeDeadlineSeconds",
            "pods run until they exit or are removed",
        ),
        no(
            "ephemeralContainers",
            "use rkt enter to debug a running pod",
        ),
        no("resourceClaims", NO_API),
        no("resources", "set resources.limits on each container"),
    ],
};

pub(crate) static POD_SECURITY_CONTEXT: Schema = Schema {
    what: "pod securityContext",
    fields: &["runAsUser", "runAsGroup", "seccompProfile"],
    unsupported: &[
        no("runAsNonRoot", "set runAsUser to a non-zero uid instead"),
        no(
            "fsGroup",
            "volume ownership is not changed by the runtime; prepare hostPath volumes yourself",
        ),
        no(
            "fsGroupChangePolicy",
            "volume ownership is not changed by the runtime",
        ),
        no(
            "supplementalGroups",
            "only runAsUser and runAsGroup are applied",
        ),
        no(
            "supplementalGroupsPolicy",
            "only runAsUser and runAsGroup are applied",
        ),
        no("seLinuxOptions", "SELinux labels are not applied"),
        no("seLinuxChangePolicy", "SELinux labels are not applied"),
        no("appArmorProfile", "AppArmor profiles are not applied"),
        no("sysctls", "pod sysctls are not applied"),
        no("windowsOptions", "this runtime runs Linux pods only"),
    ],
};

pub(crate) static CONTAINER: Schema = Schema {
    what: "container",
    fields: &[
        "name",
        "image",
        "imagePullPolicy",
        "command",
        "args",
        "env",
        "workingDir",
        "ports",
        "volumeMounts",
        "resources",
        "securityContext",
        "livenessProbe",
        "readinessProbe",
    ],
    unsupported: &[
        no(
            "envFrom",
            "ConfigMaps and Secrets do not exist here; use env with value",
        ),
        no(
            "startupProbe",
            "use a livenessProbe with initialDelaySeconds",
        ),
        no(
            "lifecycle",
            "lifecycle hooks (postStart, preStop) are not run",
        ),
        unless(
            "stdin",
            Accept::Value("false"),
            "manifest pods are not interactive; use rkt run --interactive",
        ),
        unless(
            "stdinOnce",
            Accept::Value("false"),
            "manifest pods are not interactive; use rkt run --interactive",
        ),
        unless(
            "tty",
            Accept::Value("false"),
            "manifest pods are not interactive; use rkt run --interactive",
        ),
        unless(
            "terminationMessagePath",
            Accept::Value("/dev/termination-log"),
            "termination messages are not collected; read the app's logs",
        ),
        unless(
            "terminationMessagePolicy",
            Accept::Value("File"),
            "termination messages are not collected; read the app's logs",
        ),
        no("volumeDevices", "block devices are not passed to apps"),
        no("resizePolicy", "resources are fixed while a pod runs"),
        no(
            "restartPolicy",
            "sidecar containers are not supported; restartPolicy belongs to the pod spec",
        ),
        no(
            "restartPolicyRules",
            "per-container restart rules are not supported; restartPolicy belongs to the pod spec",
        ),
    ],
};

pub(crate) static ENV: Schema = Schema {
    what: "env entry",
    fields: &["name", "value"],
    unsupported: &[no(
        "valueFrom",
        "use value (ConfigMaps, Secrets and the downward API do not exist here)",
    )],
};

pub(crate) static HOST_ALIAS: Schema = Schema {
    what: "host alias",
    fields: &["ip", "hostnames"],
    unsupported: &[],
};

pub(crate) static DNS_CONFIG: Schema = Schema {
    what: "DNS configuration",
    fields: &["nameservers", "searches", "options"],
    unsupported: &[],
};

pub(crate) static DNS_OPTION: Schema = Schema {
    what: "DNS option",
    fields: &["name", "value"],
    unsupported: &[],
};

pub(crate) static PORT: Schema = Schema {
    what: "port",
    fields: &["containerPort", "hostPort", "protocol", "name"],
    unsupported: &[no(
        "hostIP",
        "host ports are published on every host address",
    )],
};

pub(crate) static VOLUME_MOUNT: Schema = Schema {
    what: "volume mount",
    fields: &["name", "mountPath", "readOnly"],
    unsupported: &[
        no(
            "subPath",
            "mount a hostPath volume that points at the sub-directory",
        ),
        no(
            "subPathExpr",
            "mount a hostPath volume that points at the sub-directory",
        ),
        unless(
            "mountPropagation",
            Accept::Value("None"),
            "mounts are private to the pod",
        ),
        no("recursiveReadOnly", "use readOnly"),
    ],
};

pub(crate) static RESOURCES: Schema = Schema {
    what: "resources",
    fields: &["limits", "requests"],
    unsupported: &[no("claims", NO_API)],
};

pub(crate) static CONTAINER_SECURITY_CONTEXT: Schema = Schema {
    what: "container securityContext",
    fields: &[
        "runAsUser",
        "runAsGroup",
        "readOnlyRootFilesystem",
        "capabilities",
        "privileged",
        "allowPrivilegeEscalation",
        "seccompProfile",
    ],
    unsupported: &[
        no("runAsNonRoot", "set runAsUser to a non-zero uid instead"),
        no("seLinuxOptions", "SELinux labels are not applied"),
        no("appArmorProfile", "AppArmor profiles are not applied"),
        unless(
            "procMount",
            Accept::Value("Default"),
            "/proc is always masked the default way",
        ),
        no("windowsOptions", "this runtime runs Linux pods only"),
    ],
};

pub(crate) static SECCOMP_PROFILE: Schema = Schema {
    what: "seccompProfile",
    fields: &["type"],
    unsupported: &[no(
        "localhostProfile",
        "profiles from files are not supported: use type RuntimeDefault or Unconfined",
    )],
};

pub(crate) static CAPABILITIES: Schema = Schema {
    what: "capabilities",
    fields: &["add", "drop"],
    unsupported: &[],
};

pub(crate) static PROBE: Schema = Schema {
    what: "probe",
    fields: &[
        "exec",
        "tcpSocket",
        "httpGet",
        "initialDelaySeconds",
        "periodSeconds",
        "timeoutSeconds",
        "successThreshold",
        "failureThreshold",
    ],
    unsupported: &[
        no("grpc", "use exec, tcpSocket or httpGet"),
        no(
            "terminationGracePeriodSeconds",
            "set terminationGracePeriodSeconds on the pod spec",
        ),
    ],
};

pub(crate) static EXEC_ACTION: Schema = Schema {
    what: "exec probe",
    fields: &["command"],
    unsupported: &[],
};

pub(crate) static TCP_ACTION: Schema = Schema {
    what: "tcpSocket probe",
    fields: &["port"],
    unsupported: &[no("host", "probes connect to the pod's own address")],
};

pub(crate) static HTTP_ACTION: Schema = Schema {
    what: "httpGet probe",
    fields: &["path", "port", "scheme"],
    unsupported: &[
        no("host", "probes connect to the pod's own address"),
        no("httpHeaders", "probes send no extra headers"),
    ],
};

const USE_HOST_PATH: &str = "put the files on the host and use a hostPath volume";
const ON_THE_HOST: &str = "mount it on the host and use a hostPath volume";

pub(crate) static VOLUME: Schema = Schema {
    what: "volume",
    fields: &["name", "hostPath", "emptyDir"],
    unsupported: &[
        no("configMap", USE_HOST_PATH),
        no("secret", USE_HOST_PATH),
        no("persistentVolumeClaim", USE_HOST_PATH),
        no("projected", USE_HOST_PATH),
        no("downwardAPI", USE_HOST_PATH),
        no("ephemeral", "use emptyDir"),
        no("image", "use an extra container or a hostPath volume"),
        no("nfs", "mount it on the host and use a hostPath volume"),
        no("iscsi", "mount it on the host and use a hostPath volume"),
        no("csi", "mount it on the host and use a hostPath volume"),
        no("cephfs", "mount it on the host and use a hostPath volume"),
        no("rbd", "mount it on the host and use a hostPath volume"),
        no(
            "glusterfs",
            "mount it on the host and use a hostPath volume",
        ),
        no("fc", "mount it on the host and use a hostPath volume"),
        no("awsElasticBlockStore", ON_THE_HOST),
        no("azureDisk", ON_THE_HOST),
        no("azureFile", ON_THE_HOST),
        no("cinder", ON_THE_HOST),
        no("flexVolume", ON_THE_HOST),
        no("flocker", ON_THE_HOST),
        no("gcePersistentDisk", ON_THE_HOST),
        no("photonPersistentDisk", ON_THE_HOST),
        no("portworxVolume", ON_THE_HOST),
        no("quobyte", ON_THE_HOST),
        no("scaleIO", ON_THE_HOST),
        no("storageos", ON_THE_HOST),
        no("vsphereVolume", ON_THE_HOST),
        no(
            "gitRepo",
            "clone the repository on the host and use a hostPath volume",
        ),
    ],
};

pub(crate) static HOST_PATH: Schema = Schema {
    what: "hostPath volume",
    fields: &["path", "type"],
    unsupported: &[],
};

pub(crate) static EMPTY_DIR: Schema = Schema {
    what: "emptyDir volume",
    fields: &[],
    unsupported: &[
        unless(
            "medium",
            Accept::Value(""),
            "emptyDir volumes live on the pod's disk",
        ),
        no("sizeLimit", "emptyDir volumes are not size-limited"),
    ],
};

/// Container resources whose limits are enforced.
pub(crate) const RESOURCE_NAMES: &[&str] = &["cpu", "memory"];

/// rkt-specific annotations.
pub(crate) const ANNOTATION_STAGE1: &str = "rkt.io/stage1";
pub(crate) const ANNOTATION_NETWORKS: &str = "rkt.io/networks";
pub(crate) const ANNOTATION_REPLACE: &str = "rkt.io/replace";
pub(crate) const ANNOTATION_SECCOMP: &str = "rkt.io/seccomp";
pub(crate) const ANNOTATION_IMAGE_PRIVILEGES: &str = "rkt.io/image-privileges";
pub(crate) const RKT_ANNOTATIONS: &[&str] = &[
    ANNOTATION_STAGE1,
    ANNOTATION_NETWORKS,
    ANNOTATION_REPLACE,
    ANNOTATION_SECCOMP,
    ANNOTATION_IMAGE_PRIVILEGES,
];

/// Linux capabilities, as of Linux 6.x.
pub(crate) const CAPABILITIES_KNOWN: &[&str] = crate::runtime::KNOWN_CAPABILITIES;

/// Levenshtein distance over characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest of `candidates` to a mistyped `name`, if close enough to be a likely typo
/// (also catching other letter case and snake_case for camelCase).
pub(crate) fn suggest<'c>(
    name: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let fold = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let folded = fold(name);
    let limit = match name.chars().count() {
        0..=3 => 1,
        4..=8 => 2,
        _ => 3,
    };
    candidates
        .into_iter()
        .map(|c| {
            let d = if fold(c) == folded {
                0
            } else {
                edit_distance(&folded, &fold(c))
            };
            (d, c)
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

impl Schema {
    pub(crate) fn unsupported(&self, name: &str) -> Option<&Unsupported> {
        self.unsupported.iter().find(|u| u.name == name)
    }

    pub(crate) fn suggest(&self, name: &str) -> Option<&'static str> {
        suggest(
            name,
            self.fields
                .iter()
                .copied()
                .chain(self.unsupported.iter().map(|u| u.name)),
        )
    }
}

// Placement (`spec.nodeName`, `nodeSelector`, `affinity`): read by `convert::placement`.
pub(crate) static AFFINITY: Schema = Schema {
    what: "affinity",
    fields: &["nodeAffinity", "podAffinity", "podAntiAffinity"],
    unsupported: &[],
};
pub(crate) static NODE_AFFINITY: Schema = Schema {
    what: "nodeAffinity",
    fields: &[
        "requiredDuringSchedulingIgnoredDuringExecution",
        "preferredDuringSchedulingIgnoredDuringExecution",
    ],
    unsupported: &[],
};
pub(crate) static NODE_SELECTOR: Schema = Schema {
    what: "node selector",
    fields: &["nodeSelectorTerms"],
    unsupported: &[],
};
pub(crate) static NODE_SELECTOR_TERM: Schema = Schema {
    what: "nodeSelectorTerm",
    fields: &["matchExpressions", "matchFields"],
    unsupported: &[],
};
pub(crate) static REQUIREMENT: Schema = Schema {
    what: "requirement",
    fields: &["key", "operator", "values"],
    unsupported: &[],
};
pub(crate) static PREFERRED_TERM: Schema = Schema {
    what: "preferred scheduling term",
    fields: &["weight", "preference"],
    unsupported: &[],
};
pub(crate) static POD_AFFINITY: Schema = Schema {
    what: "pod affinity",
    fields: &[
        "requiredDuringSchedulingIgnoredDuringExecution",
        "preferredDuringSchedulingIgnoredDuringExecution",
    ],
    unsupported: &[],
};
pub(crate) static POD_AFFINITY_TERM: Schema = Schema {
    what: "pod affinity term",
    fields: &[
        "labelSelector",
        "namespaces",
        "topologyKey",
        "namespaceSelector",
        "matchLabelKeys",
        "mismatchLabelKeys",
    ],
    unsupported: &[],
};
pub(crate) static WEIGHTED_POD_AFFINITY_TERM: Schema = Schema {
    what: "weighted pod affinity term",
    fields: &["weight", "podAffinityTerm"],
    unsupported: &[],
};
pub(crate) static LABEL_SELECTOR: Schema = Schema {
    what: "label selector",
    fields: &["matchLabels", "matchExpressions"],
    unsupported: &[],
};

/// Each table and the Kubernetes type it checks, for the field contract
/// (`docs/pod-fields.md`).
#[cfg(test)]
pub(crate) const TABLES: &[(&Schema, &str)] = &[
    (&POD, "Pod"),
    (&METADATA, "ObjectMeta"),
    (&POD_SPEC, "PodSpec"),
    (&POD_SECURITY_CONTEXT, "PodSecurityContext"),
    (&CONTAINER, "Container"),
    (&ENV, "EnvVar"),
    (&PORT, "ContainerPort"),
    (&VOLUME_MOUNT, "VolumeMount"),
    (&RESOURCES, "ResourceRequirements"),
    (&CONTAINER_SECURITY_CONTEXT, "SecurityContext"),
    (&SECCOMP_PROFILE, "SeccompProfile"),
    (&CAPABILITIES, "Capabilities"),
    (&PROBE, "Probe"),
    (&EXEC_ACTION, "ExecAction"),
    (&TCP_ACTION, "TCPSocketAction"),
    (&HTTP_ACTION, "HTTPGetAction"),
    (&VOLUME, "Volume"),
    (&HOST_PATH, "HostPathVolumeSource"),
    (&EMPTY_DIR, "EmptyDirVolumeSource"),
    (&HOST_ALIAS, "HostAlias"),
    (&DNS_CONFIG, "PodDNSConfig"),
    (&DNS_OPTION, "PodDNSConfigOption"),
    (&AFFINITY, "Affinity"),
    (&NODE_AFFINITY, "NodeAffinity"),
    (&NODE_SELECTOR, "NodeSelector"),
    (&NODE_SELECTOR_TERM, "NodeSelectorTerm"),
    (&REQUIREMENT, "NodeSelectorRequirement"),
    (&PREFERRED_TERM, "PreferredSchedulingTerm"),
    (&POD_AFFINITY, "PodAffinity"),
    (&POD_AFFINITY, "PodAntiAffinity"),
    (&POD_AFFINITY_TERM, "PodAffinityTerm"),
    (&WEIGHTED_POD_AFFINITY_TERM, "WeightedPodAffinityTerm"),
    (&LABEL_SELECTOR, "LabelSelector"),
    (&REQUIREMENT, "LabelSelectorRequirement"),
];

#[cfg(test)]
mod contract;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        let cases = [
            ("", "", 0),
            ("abc", "abc", 0),
            ("imagePullPolcy", "imagePullPolicy", 1),
            ("kitten", "sitting", 3),
            ("", "abc", 3),
        ];
        for (a, b, d) in cases {
            assert_eq!(edit_distance(a, b), d, "{a} {b}");
        }
    }

    #[test]
    fn suggestions() {
        let cases = [
            ("imagePullPolcy", Some("imagePullPolicy")),
            ("ImagePullPolicy", Some("imagePullPolicy")),
            ("image_pull_policy", Some("imagePullPolicy")),
            ("comand", Some("command")),
            ("volumemounts", Some("volumeMounts")),
            ("arg", Some("args")),
            ("zzzzzzzz", None),
            ("x", None),
        ];
        for (typo, want) in cases {
            assert_eq!(CONTAINER.suggest(typo), want, "{typo}");
        }
    }

    #[test]
    fn tables_do_not_overlap() {
        for schema in [
            &POD,
            &METADATA,
            &POD_SPEC,
            &POD_SECURITY_CONTEXT,
            &CONTAINER,
            &ENV,
            &PORT,
            &VOLUME_MOUNT,
            &RESOURCES,
            &CONTAINER_SECURITY_CONTEXT,
            &SECCOMP_PROFILE,
            &PROBE,
            &HTTP_ACTION,
            &TCP_ACTION,
            &VOLUME,
            &EMPTY_DIR,
        ] {
            for u in schema.unsupported {
                assert!(
                    !schema.fields.contains(&u.name),
                    "{}: {}",
                    schema.what,
                    u.name
                );
            }
        }
    }
}
