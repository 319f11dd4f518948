//! Pushing a split to the cluster: one server-side apply of
//! `pluginConfig.splits.<route>` (for the rollout's route entries, nothing
//! else) onto the named `WasmPlugin` or `TrafficExtension`. istiod then
//! delivers the merged configuration to every proxy over ECDS; Envoy keeps
//! the VM and swaps only the plugin configuration, so a weight step or a
//! rollback is this one request.
//!
//! Git owns the rest of the object (the module's `url` and `sha256`, the
//! route entries in `pluginConfig.routes`): `pluginConfig` is schemaless,
//! so the API server merges its maps key by key and the controller's field
//! manager owns only the keys of `splits` it applies. Each set of route
//! entries has its own field manager ([`split_field_manager`]), so two
//! rollouts driving different entries of one plugin never remove each
//! other's split (a field a manager stops applying is removed).
//!
//! The pusher refuses an invalid configuration before any request, and
//! after the apply checks that what the API server stored carries the
//! split and is a configuration the filter accepts. A 404 is told apart:
//! the object is missing, or the API server does not serve its kind at
//! all ([`crate::served`]).

use std::collections::BTreeMap;

use canary_config::{ConfigErrors, FilterConfig};
use kube::api::{Api, Patch, PatchParams};
use kube::core::DynamicObject;
use kube::Client;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api_error::{ApiCall, ApiError};
use crate::plugin_object::PluginObject;
use crate::served::{check_served, KindNotServed, ServedError};

/// The field manager of the controller's other writes (Deployments).
pub const FIELD_MANAGER: &str = "canary-controller";

/// Longest field manager name the API server accepts.
const MAX_FIELD_MANAGER: usize = 128;

/// The field manager that owns the splits of `routes`:
/// `canary-controller.split.<route>[.<route>…]` (sorted), or, when that
/// would be longer than the API server allows, the same prefix and a digest
/// of the names. Stable for a given set of route entries.
pub fn split_field_manager(routes: &[String]) -> String {
    let mut names: Vec<&str> = routes.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let plain = format!("{FIELD_MANAGER}.split.{}", names.join("."));
    if plain.len() <= MAX_FIELD_MANAGER {
        return plain;
    }
    let digest = Sha256::digest(names.join("\n").as_bytes());
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("{FIELD_MANAGER}.split.{hex}")
}

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
    /// The configuration has no split for a route entry to push.
    #[error("the filter configuration for {object} has no split for route entry {route:?}; nothing was sent")]
    NoSplit { object: PluginObject, route: String },
    /// The API server refused the apply or could not be reached.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The API server does not serve the object's kind.
    #[error("cannot use {object}: {source}")]
    KindNotServed {
        object: PluginObject,
        #[source]
        source: KindNotServed,
    },
    /// The apply succeeded but the object holds another split (a webhook
    /// changed it).
    #[error("{object} holds a different split than the one applied; stored: {stored}")]
    StoredConfigDiffers {
        object: PluginObject,
        stored: String,
    },
    /// The object's configuration, as merged by the API server, is one the
    /// filter would reject (Git's part and the splits do not fit).
    #[error("{object} holds a configuration the filter would reject: {errors}")]
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

    /// Validates `config` (the object's configuration with the split
    /// written in, as [`canary_config::Split::apply_to`] makes it) with the
    /// filter's own rules, then applies `config.splits.<route>` for each of
    /// `routes` and nothing else (`PATCH …?fieldManager=<split manager>&force=true`,
    /// `application/apply-patch+yaml`). `force` takes those keys over from
    /// whoever set them before, which is what the owner of the split must do
    /// (a rollback must never be refused); the patch names no other field.
    pub async fn push(
        &self,
        config: &FilterConfig,
        routes: &[String],
    ) -> Result<AppliedConfig, PushError> {
        canary_config::compile(config).map_err(|errors| PushError::InvalidConfig {
            object: self.object.clone(),
            errors,
        })?;
        let mut splits = serde_json::Map::new();
        for route in routes {
            let split = config.splits.get(route).ok_or_else(|| PushError::NoSplit {
                object: self.object.clone(),
                route: route.clone(),
            })?;
            splits.insert(
                route.clone(),
                serde_json::to_value(split).map_err(PushError::Encode)?,
            );
        }
        let splits = Value::Object(splits);
        let patch = self.object.split_patch(splits.clone());
        let resource = self.object.kind.api_resource();
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.object.namespace, &resource);
        let manager = split_field_manager(routes);
        let params = PatchParams::apply(&manager).force();
        let stored = match api
            .patch(&self.object.name, &params, &Patch::Apply(&patch))
            .await
        {
            Ok(stored) => stored,
            Err(error) => {
                let call = ApiCall::apply(&resource, &self.object.namespace, &self.object.name);
                return Err(self.explain(ApiError::from_kube(call, error)).await);
            }
        };
        self.check_stored(&splits, &stored)?;
        let applied = AppliedConfig {
            resource_version: stored.metadata.resource_version,
            generation: stored.metadata.generation,
        };
        tracing::info!(
            object = %self.object,
            field_manager = %manager,
            resource_version = applied.resource_version.as_deref().unwrap_or(""),
            generation = applied.generation.unwrap_or_default(),
            "split applied"
        );
        Ok(applied)
    }

    /// Whether the API server serves the object's kind (one discovery
    /// request): the check to run before a rollout starts, so that an
    /// Istio without `TrafficExtension` is reported as such.
    pub async fn check_kind(&self) -> Result<(), PushError> {
        match check_served(&self.client, self.object.kind).await {
            Ok(()) => Ok(()),
            Err(ServedError::NotServed(source)) => Err(PushError::KindNotServed {
                object: self.object.clone(),
                source,
            }),
            Err(ServedError::Api(error)) => Err(PushError::Api(error)),
        }
    }

    /// A 404 either means the object is missing or its kind is not served
    /// at all; discovery tells which.
    async fn explain(&self, error: ApiError) -> PushError {
        if !matches!(error, ApiError::NotFound { .. }) {
            return PushError::Api(error);
        }
        match self.check_kind().await {
            Err(not_served @ PushError::KindNotServed { .. }) => not_served,
            _ => PushError::Api(error),
        }
    }

    /// The filter configuration the object holds now (`GET` of the
    /// object), validated like a push: the base a rollout's weights are
    /// applied to. `None` when the object has no configuration yet.
    pub async fn current(&self) -> Result<Option<FilterConfig>, PushError> {
        let resource = self.object.kind.api_resource();
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.object.namespace, &resource);
        let object = match api.get(&self.object.name).await {
            Ok(object) => object,
            Err(error) => {
                let call = ApiCall::get(&resource, &self.object.namespace, &self.object.name);
                return Err(self.explain(ApiError::from_kube(call, error)).await);
            }
        };
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

    /// Checks that the object the API server returned carries `splits`
    /// and a configuration the filter accepts.
    fn check_stored(&self, splits: &Value, stored: &DynamicObject) -> Result<(), PushError> {
        let differs = |stored: String| PushError::StoredConfigDiffers {
            object: self.object.clone(),
            stored,
        };
        let Some(stored_config) = self.object.stored_config(&stored.data) else {
            return Err(differs("no configuration".to_owned()));
        };
        let stored_splits: BTreeMap<&String, &Value> = splits
            .as_object()
            .into_iter()
            .flatten()
            .map(|(route, _)| {
                (
                    route,
                    stored_config
                        .get("splits")
                        .and_then(|splits| splits.get(route))
                        .unwrap_or(&Value::Null),
                )
            })
            .collect();
        let wanted: BTreeMap<&String, &Value> = splits.as_object().into_iter().flatten().collect();
        if stored_splits != wanted {
            return Err(differs(
                stored_config
                    .get("splits")
                    .map(Value::to_string)
                    .unwrap_or_default(),
            ));
        }
        let text = stored_config.to_string();
        let invalid = |errors| PushError::StoredConfigInvalid {
            object: self.object.clone(),
            errors,
        };
        let config = canary_config::parse_document(text.as_bytes()).map_err(invalid)?;
        canary_config::compile(&config).map_err(invalid)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(routes: &[&str]) -> Vec<String> {
        routes.iter().map(|r| (*r).to_owned()).collect()
    }

    #[test]
    fn each_set_of_routes_has_its_own_field_manager() {
        assert_eq!(
            split_field_manager(&names(&["web"])),
            "canary-controller.split.web"
        );
        assert_eq!(
            split_field_manager(&names(&["web", "api", "web"])),
            split_field_manager(&names(&["api", "web"]))
        );
        assert_ne!(
            split_field_manager(&names(&["web"])),
            split_field_manager(&names(&["api"]))
        );
        let many: Vec<String> = (0..40).map(|i| format!("route-{i}")).collect();
        let long = split_field_manager(&many);
        assert!(long.len() <= MAX_FIELD_MANAGER, "{long}");
        assert!(long.starts_with("canary-controller.split."), "{long}");
        assert_ne!(long, split_field_manager(&many[1..]));
    }
}
