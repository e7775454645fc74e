//! Shared builders for the reconciler's unit tests.

use std::collections::BTreeMap;

use super::k8s::{DesiredPod, PodKey, ReplaceStrategy, RestartPolicy};

pub fn key(name: &str) -> PodKey {
    PodKey {
        namespace: "default".into(),
        name: name.into(),
    }
}

/// A desired pod with no containers, defined in `/pods.d/<name>.yaml` at line 1.
pub fn desired_pod(name: &str, hash: &str) -> DesiredPod {
    DesiredPod {
        key: key(name),
        file: format!("/pods.d/{name}.yaml"),
        line: 1,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        spec_hash: hash.into(),
        restart_policy: RestartPolicy::Always,
        host_network: true,
        private_users: false,
        hostname: None,
        host_aliases: Vec::new(),
        dns: None,
        termination_grace_period_secs: 30,
        stage1: Default::default(),
        networks: Vec::new(),
        replace: ReplaceStrategy::StopFirst,
        image_privileges: false,
        placement: Default::default(),
        init_containers: Vec::new(),
        containers: Vec::new(),
        volumes: Vec::new(),
        warnings: Vec::new(),
    }
}

/// A container running `image` with everything else at its default.
pub fn container(name: &str, image: &str) -> super::k8s::DesiredContainer {
    super::k8s::DesiredContainer {
        name: name.into(),
        image: image.into(),
        image_pull_policy: super::k8s::ImagePullPolicy::IfNotPresent,
        command: Vec::new(),
        args: Vec::new(),
        env: Vec::new(),
        working_dir: None,
        ports: Vec::new(),
        volume_mounts: Vec::new(),
        memory_limit_bytes: None,
        cpu_millis: None,
        run_as_user: None,
        run_as_group: None,
        read_only_root_filesystem: false,
        capabilities_add: Vec::new(),
        capabilities_drop: Vec::new(),
        privileged: false,
        seccomp: Default::default(),
        liveness_probe: None,
        readiness_probe: None,
    }
}
