//! The network policy kinds of other plugins a cluster holds (Cilium, Calico, Antrea, GKE's
//! FQDNNetworkPolicy…), which Palisade does not enforce: asked of the API server after a listing,
//! so that an answer read from a cluster says what it ignores, as one read from manifests does.
//! Per group of `palisade_model::foreign_policy_groups`: the group (absent: nothing to say), its
//! versions' resources (the preferred first; a kind found once is not asked again), and of each
//! such kind a list of at most one object's metadata. What cannot be asked (403, a timeout) is
//! logged and left: this says more, it never says less than before. All of it within the request
//! timeout, twice: an aggregated API that hangs costs a listing that much at most.

use crate::bounded::get;
use kube::Client;
use serde::Deserialize;
use std::time::Duration;

/// What one question's answer is read within: a group and its resources are small.
const MAX_ANSWER: usize = 1 << 20;

/// A network policy kind the cluster holds objects of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Foreign {
    /// Its group and version (`cilium.io/v2`).
    pub api_version: String,
    /// Its kind.
    pub kind: String,
    /// Where it was found (the list's URL).
    pub url: String,
    /// The cluster serves the kind, but would not say whether it holds objects of it (403: the
    /// reader's ClusterRole does not grant them): there may be some.
    pub unreadable: bool,
}

#[derive(Deserialize)]
struct Group {
    #[serde(rename = "preferredVersion")]
    preferred_version: GroupVersion,
    #[serde(default)]
    versions: Vec<GroupVersion>,
}

#[derive(Deserialize)]
struct GroupVersion {
    #[serde(rename = "groupVersion")]
    group_version: String,
}

#[derive(Deserialize)]
struct Resources {
    resources: Vec<Resource>,
}

#[derive(Deserialize)]
struct Resource {
    name: String,
    kind: String,
}

#[derive(Deserialize)]
struct Items {
    #[serde(default)]
    items: Vec<serde::de::IgnoredAny>,
}

/// What a question got.
enum Answer<T> {
    Read(T),
    /// 403.
    Refused,
    /// Nothing to read: 404, or a failure (logged).
    None,
}

/// The answer to GET `path`, within [`MAX_ANSWER`] and `timeout`.
async fn ask<T: for<'de> Deserialize<'de>>(
    client: &Client,
    server: &str,
    path: &str,
    timeout: Duration,
) -> Answer<T> {
    // Lists as metadata only: a policy's spec is not read (nor bounded) here.
    let accept =
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
    let request = http::Request::get(path).header(http::header::ACCEPT, accept);
    let Ok(request) = request.body(Vec::new()) else {
        return Answer::None;
    };
    match tokio::time::timeout(timeout, get::<T>(client, request, MAX_ANSWER)).await {
        Ok(Ok(answer)) => Answer::Read(answer),
        Ok(Err(fault)) if fault.code() == Some(404) => Answer::None,
        Ok(Err(fault)) if fault.code() == Some(403) => Answer::Refused,
        Ok(Err(fault)) => {
            tracing::debug!(%server, path, %fault, "cannot tell whether the cluster holds policies of other plugins");
            Answer::None
        }
        Err(_) => {
            tracing::debug!(%server, path, ?timeout, "no answer: cannot tell whether the cluster holds policies of other plugins");
            Answer::None
        }
    }
}

/// The foreign network policy kinds of which the cluster at `server` holds at least one object, or
/// may (it serves the kind but refuses to list it); within twice `timeout` in all.
pub async fn foreign_policies(client: &Client, server: &str, timeout: Duration) -> Vec<Foreign> {
    let mut found = Vec::new();
    let asked = tokio::time::timeout(2 * timeout, ask_groups(client, server, timeout, &mut found));
    if asked.await.is_err() {
        tracing::debug!(%server, "out of time asking whether the cluster holds policies of other plugins");
    }
    found
}

async fn ask_groups(client: &Client, server: &str, timeout: Duration, found: &mut Vec<Foreign>) {
    for (group, kinds) in palisade_model::foreign_policy_groups() {
        let path = format!("/apis/{group}");
        let Answer::Read(g) = ask::<Group>(client, server, &path, timeout).await else {
            continue;
        };
        // The preferred version first, then the others.
        let preferred = g.preferred_version.group_version;
        let others = (g.versions.into_iter()).map(|v| v.group_version);
        let versions: Vec<String> = std::iter::once(preferred.clone())
            .chain(others.filter(|v| *v != preferred))
            .collect();
        let mut left: Vec<&str> = kinds.to_vec();
        for version in &versions {
            if left.is_empty() {
                break;
            }
            let path = format!("/apis/{version}");
            let Answer::Read(resources) = ask::<Resources>(client, server, &path, timeout).await
            else {
                continue;
            };
            for r in resources.resources {
                // Subresources (`x/status`) are not kinds of objects; a kind is asked once.
                let Some(at) = left.iter().position(|k| *k == r.kind) else {
                    continue;
                };
                if r.name.contains('/') {
                    continue;
                }
                // Asked once, whatever the answer: at most as many lists as known kinds.
                left.swap_remove(at);
                let list = format!("/apis/{version}/{}", r.name);
                let unreadable =
                    match ask::<Items>(client, server, &format!("{list}?limit=1"), timeout).await {
                        Answer::Read(one) if !one.items.is_empty() => false,
                        Answer::Refused => true,
                        Answer::Read(_) | Answer::None => continue,
                    };
                found.push(Foreign {
                    api_version: version.clone(),
                    kind: r.kind,
                    url: format!("{server}{list}"),
                    unreadable,
                });
            }
        }
    }
}
