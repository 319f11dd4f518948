//! Writing a rollout's status.

use kube::api::{Api, PostParams};
use kube::core::DynamicObject;
use kube::Resource;
use serde_json::json;

use canary_kube::ApiError;

use crate::permissions::UPDATE_ROLLOUT_STATUS;
use crate::resource::{CanaryRollout, CanaryRolloutStatus};

/// Writes `status` through the status subresource, as a whole, guarded by
/// the `resourceVersion` last seen: a second writer (another controller
/// instance, a person) makes the write fail instead of being overwritten.
pub(super) struct StatusWriter {
    pub(super) api: Api<DynamicObject>,
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) resource_version: Option<String>,
    pub(super) written: CanaryRolloutStatus,
}

impl StatusWriter {
    pub(super) async fn write(&mut self, status: &CanaryRolloutStatus) -> Result<(), ApiError> {
        let call = || UPDATE_ROLLOUT_STATUS.call(&self.namespace, Some(&self.name));
        let body: DynamicObject = serde_json::from_value(json!({
            "apiVersion": CanaryRollout::api_version(&()),
            "kind": CanaryRollout::kind(&()),
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": self.resource_version,
            },
            "status": status,
        }))
        .map_err(|error| ApiError::from_kube(call(), kube::Error::SerdeError(error)))?;
        let stored = self
            .api
            .replace_status(&self.name, &PostParams::default(), &body)
            .await
            .map_err(|error| {
                UPDATE_ROLLOUT_STATUS.error(&self.namespace, Some(&self.name), error)
            })?;
        self.resource_version = stored.metadata.resource_version;
        self.written = status.clone();
        Ok(())
    }

    /// Writes `status` unless it is what was written (or read) last, the
    /// report's time aside.
    pub(super) async fn write_if_changed(
        &mut self,
        status: &CanaryRolloutStatus,
    ) -> Result<(), ApiError> {
        if timeless(status) != timeless(&self.written) {
            self.write(status).await?;
        }
        Ok(())
    }
}

fn timeless(status: &CanaryRolloutStatus) -> CanaryRolloutStatus {
    let mut status = status.clone();
    if let Some(report) = &mut status.report {
        report.updated_at = 0;
    }
    status
}
