//! Everything a rollout's spec needs from the cluster before it can run:
//! the `AnalysisTemplate` / `ClusterAnalysisTemplate` objects it names and
//! the Secrets its `secretKeyRef` arguments read; then the conversion
//! ([`crate::convert`]).
//!
//! A missing template or Secret is a problem of the spec (a person fixes
//! it); any other failure of a call is an API error (retried).

use std::collections::BTreeMap;
use std::sync::Arc;

use canary_analysis::SecretKeyRef;
use canary_kube::ApiError;
use canary_rollout::RolloutSpec;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::Client;

use crate::convert::{
    rollout_spec, secret_keys, template_keys, SpecProblem, SpecProblems, TemplateKey,
    TemplateObject, ARGO_GROUP, ARGO_VERSION,
};
use crate::permissions::{GET_ANALYSIS_TEMPLATES, GET_CLUSTER_ANALYSIS_TEMPLATES, GET_SECRETS};
use crate::resource::CanaryRolloutSpec;

/// Why a rollout's spec could not be made runnable.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The spec, a template or a Secret it names is wrong or missing.
    #[error(transparent)]
    Invalid(SpecProblems),
    /// A call failed.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// The resource of `AnalysisTemplate` or `ClusterAnalysisTemplate`.
pub fn template_resource(cluster_scope: bool) -> ApiResource {
    let (kind, plural) = if cluster_scope {
        ("ClusterAnalysisTemplate", "clusteranalysistemplates")
    } else {
        ("AnalysisTemplate", "analysistemplates")
    };
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(ARGO_GROUP, ARGO_VERSION, kind),
        plural,
    )
}

/// Reads what the rollout `name` in `namespace` names and returns it
/// ready to run.
pub async fn load_spec(
    client: &Client,
    namespace: &str,
    name: &str,
    spec: &CanaryRolloutSpec,
) -> Result<Arc<RolloutSpec>, SpecError> {
    let mut templates = Vec::new();
    let mut missing = Vec::new();
    for key in template_keys(spec) {
        match fetch_template(client, namespace, &key).await {
            Ok(object) => templates.push(object),
            Err(ApiError::NotFound { .. }) => missing.push(SpecProblem {
                object: format!("canaryrollout {namespace}/{name}"),
                path: "spec".to_owned(),
                reason: format!("{} does not exist", key.describe(namespace)),
            }),
            Err(error) => return Err(error.into()),
        }
    }
    if !missing.is_empty() {
        return Err(SpecError::Invalid(SpecProblems(missing)));
    }
    let wanted = secret_keys(name, namespace, spec, &templates).map_err(SpecError::Invalid)?;
    let secrets = fetch_secrets(client, namespace, &wanted).await?;
    let read = |reference: &SecretKeyRef| {
        secrets
            .get(&(reference.name.clone(), reference.key.clone()))
            .cloned()
    };
    rollout_spec(name, namespace, spec, &templates, &read)
        .map(Arc::new)
        .map_err(SpecError::Invalid)
}

async fn fetch_template(
    client: &Client,
    namespace: &str,
    key: &TemplateKey,
) -> Result<TemplateObject, ApiError> {
    let resource = template_resource(key.cluster_scope);
    let (api, permission, scope): (Api<DynamicObject>, _, &str) = if key.cluster_scope {
        (
            Api::all_with(client.clone(), &resource),
            GET_CLUSTER_ANALYSIS_TEMPLATES,
            "",
        )
    } else {
        (
            Api::namespaced_with(client.clone(), namespace, &resource),
            GET_ANALYSIS_TEMPLATES,
            namespace,
        )
    };
    let object = api
        .get(&key.name)
        .await
        .map_err(|error| permission.error(scope, Some(&key.name), error))?;
    let object = serde_json::to_value(&object).map_err(|error| {
        ApiError::from_kube(
            permission.call(scope, Some(&key.name)),
            kube::Error::SerdeError(error),
        )
    })?;
    Ok(TemplateObject {
        key: key.clone(),
        object,
    })
}

/// The values of `wanted` that exist; a missing Secret or key is left out
/// (the conversion then names the argument that has no value).
async fn fetch_secrets(
    client: &Client,
    namespace: &str,
    wanted: &[SecretKeyRef],
) -> Result<BTreeMap<(String, String), String>, ApiError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut values = BTreeMap::new();
    let mut read: BTreeMap<String, Option<Secret>> = BTreeMap::new();
    for reference in wanted {
        if !read.contains_key(&reference.name) {
            let secret = match api.get(&reference.name).await {
                Ok(secret) => Some(secret),
                Err(error) => match GET_SECRETS.error(namespace, Some(&reference.name), error) {
                    ApiError::NotFound { .. } => None,
                    other => return Err(other),
                },
            };
            read.insert(reference.name.clone(), secret);
        }
        let value = read
            .get(&reference.name)
            .and_then(Option::as_ref)
            .and_then(|secret| secret.data.as_ref())
            .and_then(|data| data.get(&reference.key))
            .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok());
        if let Some(value) = value {
            canary_sources::redact::remember_secret(&value);
            values.insert((reference.name.clone(), reference.key.clone()), value);
        }
    }
    Ok(values)
}
