//! Pushing a filter configuration to the cluster: one server-side apply of
//! the configuration's split onto the named `WasmPlugin` or
//! `TrafficExtension`.
//! istiod then delivers it to every proxy over ECDS; Envoy keeps the VM and
//! swaps only the plugin configuration, so a weight step or a rollback is
//! this one request.
//!
//! The controller owns only the `splits` map of the configuration; Git owns
//! the rest (`routes` included, a list the API server replaces whole). So
//! the apply carries `splits` alone: a GitOps sync of the object, by
//! server-side apply or `kubectl apply`, neither conflicts with the
//! controller nor resets the split, and the controller never takes over a
//! field Git writes.
//!
//! The pusher refuses an invalid configuration before any request, and
//! after the apply checks that what the API server stored is exactly what
//! was validated: fields set by another field manager inside
//! `pluginConfig` would otherwise reach the filter unvalidated.

use canary_config::{ConfigErrors, FilterConfig};
use kube::api::{Api, Patch, PatchParams};
use kube::core::DynamicObject;
use kube::Client;
use serde_json::json;

use crate::api_error::{ApiCall, ApiError};
use crate::plugin_object::{filter_config_json, PluginObject};

/// The field manager the controller applies as; it owns the configuration's
/// `splits` and nothing else.
pub const FIELD_MANAGER: &str = "canary-controller";

/// The object's version after a successful push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedConfig {
    /// `metadata.resourceVersion` after the apply.
    pub resource_version: Option<String>,
    /// `metadata.generation` after the apply; unchanged when the
    /// configuration already was the one pushed.
    pub generation: Option<i64>,
}

/// Why a push did not leave the configuration in place.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The configuration fails the filter's own validation; nothing was sent.
    #[error(
        "refusing to push an invalid filter configuration to {object}; nothing was sent: {errors}"
    )]
    InvalidConfig {
        object: PluginObject,
        errors: ConfigErrors,
    },
    /// The configuration could not be written as JSON; nothing was sent.
    #[error("cannot write the filter configuration as JSON; nothing was sent: {0}")]
    Encode(#[source] serde_json::Error),
    /// The API server refused the apply or could not be reached.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The apply succeeded but the object holds another configuration
    /// (another field manager owns keys inside it, or a webhook changed it).
    #[error(
        "{object} holds a different configuration than the one applied \
         (does another field manager own part of it?); stored: {stored}"
    )]
    StoredConfigDiffers {
        object: PluginObject,
        stored: String,
    },
    /// The apply succeeded but the object's configuration, as merged by the
    /// API server, is one the filter would reject.
    #[error(
        "{object} holds a configuration the filter would reject \
         (does another field manager own part of it?): {errors}"
    )]
    StoredConfigInvalid {
        object: PluginObject,
        errors: ConfigErrors,
    },
}

/// Applies filter configurations to one Istio object. Cheap to clone.
#[derive(Clone)]
pub struct PluginPusher {
    client: Client,
    object: PluginObject,
}

impl std::fmt::Debug for PluginPusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginPusher")
            .field("object", &self.object)
            .finish()
    }
}

impl PluginPusher {
    /// A pusher writing to `object` through `client`.
    pub fn new(client: Client, object: PluginObject) -> PluginPusher {
        PluginPusher { client, object }
    }

    /// The object this pusher writes to.
    pub fn object(&self) -> &PluginObject {
        &self.object
    }

    /// Validates `config` with [`canary_config::compile`], then applies its
    /// `splits` (`PATCH …?fieldManager=canary-controller&force=true`,
    /// content type `application/apply-patch+yaml`); the rest of `config`
    /// must be what the object holds (it was read from it), which the
    /// check of the stored object confirms. `force` takes a split over from
    /// whoever set it before, which is what a controller that owns the
    /// weight must do.
    pub async fn push(&self, config: &FilterConfig) -> Result<AppliedConfig, PushError> {
        canary_config::compile(config).map_err(|errors| PushError::InvalidConfig {
            object: self.object.clone(),
            errors,
        })?;
        let full = filter_config_json(config).map_err(PushError::Encode)?;
        let splits = full.get("splits").cloned().unwrap_or_else(|| json!({}));
        let patch = self.object.apply_patch(json!({ "splits": splits }));
        let resource = self.object.kind.api_resource();
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.object.namespace, &resource);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let stored = api
            .patch(&self.object.name, &params, &Patch::Apply(&patch))
            .await
            .map_err(|error| {
                let call = ApiCall::apply(&resource, &self.object.namespace, &self.object.name);
                ApiError::from_kube(call, error)
            })?;
        self.check_stored(config, &stored)?;
        let applied = AppliedConfig {
            resource_version: stored.metadata.resource_version,
            generation: stored.metadata.generation,
        };
        tracing::info!(
            object = %self.object,
            resource_version = applied.resource_version.as_deref().unwrap_or(""),
            generation = applied.generation.unwrap_or_default(),
            "filter configuration applied"
        );
        Ok(applied)
    }

    /// The filter configuration the object holds now (`GET` of the
    /// object), validated like a push: the base a rollout's weights are
    /// applied to. `None` when the object has no configuration yet.
    pub async fn current(&self) -> Result<Option<FilterConfig>, PushError> {
        let resource = self.object.kind.api_resource();
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.object.namespace, &resource);
        let object = api.get(&self.object.name).await.map_err(|error| {
            let call = ApiCall::get(&resource, &self.object.namespace, &self.object.name);
            ApiError::from_kube(call, error)
        })?;
        let Some(stored) = self.object.stored_config(&object.data) else {
            return Ok(None);
        };
        let text = stored.to_string();
        let invalid = |errors| PushError::StoredConfigInvalid {
            object: self.object.clone(),
            errors,
        };
        let config = canary_config::parse_document(text.as_bytes()).map_err(invalid)?;
        canary_config::compile(&config).map_err(invalid)?;
        Ok(Some(config))
    }

    /// Checks that the object the API server returned holds `config`.
    fn check_stored(&self, config: &FilterConfig, stored: &DynamicObject) -> Result<(), PushError> {
        let differs = |stored: String| PushError::StoredConfigDiffers {
            object: self.object.clone(),
            stored,
        };
        let Some(stored_config) = self.object.stored_config(&stored.data) else {
            return Err(differs("no configuration".to_owned()));
        };
        let text = stored_config.to_string();
        match canary_config::parse_document(text.as_bytes()) {
            Ok(read_back) if read_back == *config => Ok(()),
            Ok(_) => Err(differs(text)),
            Err(errors) => Err(PushError::StoredConfigInvalid {
                object: self.object.clone(),
                errors,
            }),
        }
    }
}
