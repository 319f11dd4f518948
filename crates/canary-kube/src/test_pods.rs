//! Pods for unit tests, written as the API server would send them.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

/// How a test pod looks.
#[derive(Clone)]
pub struct PodShape {
    status: bool,
    phase: Option<&'static str>,
    conditions: Option<Vec<(&'static str, &'static str)>>,
    terminating: bool,
    containers: Vec<Value>,
    init_containers: Vec<Value>,
}

impl PodShape {
    pub fn ready() -> PodShape {
        PodShape::condition("Ready", "True")
    }

    pub fn not_ready() -> PodShape {
        PodShape::condition("Ready", "False")
    }

    pub fn condition(kind: &'static str, status: &'static str) -> PodShape {
        PodShape {
            status: true,
            phase: None,
            conditions: Some(vec![(kind, status)]),
            terminating: false,
            containers: Vec::new(),
            init_containers: Vec::new(),
        }
    }

    pub fn no_conditions() -> PodShape {
        PodShape {
            conditions: None,
            ..PodShape::ready()
        }
    }

    pub fn no_status() -> PodShape {
        PodShape {
            status: false,
            ..PodShape::ready()
        }
    }

    pub fn phase(mut self, phase: &'static str) -> PodShape {
        self.phase = Some(phase);
        self
    }

    pub fn terminating(mut self) -> PodShape {
        self.terminating = true;
        self
    }

    /// A container with the given CPU request and limit.
    pub fn container(mut self, name: &str, request: Option<&str>, limit: Option<&str>) -> PodShape {
        self.containers.push(container(name, request, limit));
        self
    }

    /// An init container; `restart_policy: Some("Always")` makes it a sidecar.
    pub fn init_container(
        mut self,
        name: &str,
        restart_policy: Option<&str>,
        request: Option<&str>,
    ) -> PodShape {
        let mut init = container(name, request, None);
        if let Some(policy) = restart_policy {
            init["restartPolicy"] = json!(policy);
        }
        self.init_containers.push(init);
        self
    }
}

fn container(name: &str, request: Option<&str>, limit: Option<&str>) -> Value {
    let mut resources = json!({});
    if let Some(request) = request {
        resources["requests"] = json!({ "cpu": request, "memory": "64Mi" });
    }
    if let Some(limit) = limit {
        resources["limits"] = json!({ "cpu": limit, "memory": "128Mi" });
    }
    json!({ "name": name, "image": "registry.example/app:1", "resources": resources })
}

/// The pod as JSON.
pub fn pod_json(name: &str, shape: PodShape) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "namespace": "shop", "labels": { "app": "web" } },
        "spec": { "containers": shape.containers },
    });
    if !shape.init_containers.is_empty() {
        pod["spec"]["initContainers"] = json!(shape.init_containers);
    }
    if shape.terminating {
        pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    if shape.status {
        let mut status = json!({});
        if let Some(phase) = shape.phase {
            status["phase"] = json!(phase);
        }
        if let Some(conditions) = shape.conditions {
            status["conditions"] = conditions
                .into_iter()
                .map(|(kind, value)| json!({ "type": kind, "status": value }))
                .collect();
        }
        pod["status"] = status;
    }
    pod
}

/// The pod as k8s-openapi reads it.
pub fn pod(name: &str, shape: PodShape) -> Pod {
    serde_json::from_value(pod_json(name, shape)).unwrap()
}
