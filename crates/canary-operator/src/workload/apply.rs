//! The Deployment calls behind the plan: read, scale, copy a template.
//! Each is one request, idempotent, with the controller as field manager
//! (so GitOps tools can tell its changes apart, see
//! `docs/install-istio.md`).

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject};
use kube::Client;
use serde_json::Value;

use canary_kube::{ApiError, FIELD_MANAGER};

use crate::permissions::{GET_DEPLOYMENTS, PATCH_DEPLOYMENTS};
use crate::workload::plan::{copy_template_patch, scale_down_patch, scale_up_patch};
use crate::workload::view::{MalformedDeployment, WorkloadView};

/// Why a Deployment could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The call failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The object lacks what every Deployment has.
    #[error(transparent)]
    Malformed(#[from] MalformedDeployment),
}

/// The Deployments of one namespace.
#[derive(Clone)]
pub struct Workloads {
    api: Api<DynamicObject>,
    namespace: String,
}

impl Workloads {
    /// Deployments in `namespace`.
    pub fn new(client: Client, namespace: &str) -> Workloads {
        let resource = ApiResource::erase::<Deployment>(&());
        Workloads {
            api: Api::namespaced_with(client, namespace, &resource),
            namespace: namespace.to_owned(),
        }
    }

    /// Reads the Deployment `name`.
    pub async fn get(&self, name: &str) -> Result<WorkloadView, WorkloadError> {
        let object = self
            .api
            .get(name)
            .await
            .map_err(|error| GET_DEPLOYMENTS.error(&self.namespace, Some(name), error))?;
        let value = serde_json::to_value(&object).map_err(|error| {
            ApiError::from_kube(
                GET_DEPLOYMENTS.call(&self.namespace, Some(name)),
                kube::Error::SerdeError(error),
            )
        })?;
        Ok(WorkloadView::from_object(&value)?)
    }

    /// Scales `canary` to zero, remembering its replica count `from`.
    pub async fn scale_down(&self, canary: &str, from: i64) -> Result<(), ApiError> {
        self.merge_patch(canary, &scale_down_patch(from)).await
    }

    /// Scales `canary` back to `to` replicas.
    pub async fn scale_up(&self, canary: &str, to: i64) -> Result<(), ApiError> {
        self.merge_patch(canary, &scale_up_patch(to)).await
    }

    /// Gives `stable` the pod template of `canary` (stable's labels kept).
    pub async fn copy_template(
        &self,
        stable: &WorkloadView,
        canary: &WorkloadView,
    ) -> Result<(), ApiError> {
        self.merge_patch(&stable.name, &copy_template_patch(stable, canary))
            .await
    }

    async fn merge_patch(&self, name: &str, patch: &Value) -> Result<(), ApiError> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        self.api
            .patch(name, &params, &Patch::Merge(patch))
            .await
            .map_err(|error| PATCH_DEPLOYMENTS.error(&self.namespace, Some(name), error))?;
        tracing::info!(namespace = %self.namespace, deployment = name, patch = %patch, "deployment patched");
        Ok(())
    }
}
