//! The network policy kinds of other plugins a cluster holds (Cilium, Calico, Antrea, GKE's
//! FQDNNetworkPolicy…), which Palisade does not enforce: asked of the API server after a listing,
//! so that an answer read from a cluster says what it ignores, as one read from manifests does.
//! Per group of `palisade_model::foreign_policy_groups`: the group (absent: nothing to say), its
//! preferred version's resources, and of each such kind a list of at most one object. What cannot
//! be asked (403, a timeout) is logged and left: this says more, it never says less than before.

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
    let Ok(request) = http::Request::get(path).body(Vec::new()) else {
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
/// may (it serves the kind but refuses to list it).
pub(crate) async fn foreign_policies(
    client: &Client,
    server: &str,
    timeout: Duration,
) -> Vec<Foreign> {
    let mut found = Vec::new();
    for (group, kinds) in palisade_model::foreign_policy_groups() {
        let path = format!("/apis/{group}");
        let Answer::Read(g) = ask::<Group>(client, server, &path, timeout).await else {
            continue;
        };
        let version = g.preferred_version.group_version;
        let path = format!("/apis/{version}");
        let Answer::Read(resources) = ask::<Resources>(client, server, &path, timeout).await else {
            continue;
        };
        for r in resources.resources {
            // Subresources (`x/status`) are not kinds of objects.
            if r.name.contains('/') || !kinds.contains(&r.kind.as_str()) {
                continue;
            }
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
    found
}
