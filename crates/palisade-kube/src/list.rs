//! Listing every kind once: `palisade matrix` and `explain` against a live cluster.

use crate::bounded::Fault;
use crate::{client, ListedKind, SourceError, KINDS};
use kube::api::{ListParams, ObjectList};
use kube::Client;
use palisade_model::{Loader, ObjectEvent, ObjectStore};
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// Objects asked for per page of a list.
const PAGE: u32 = 500;

/// What a listing read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listed {
    /// The API server.
    pub server: String,
    /// Objects per kind, in the order listed.
    pub counts: Vec<(&'static str, usize)>,
    /// Optional kinds left out, and why (say, `NetworkLogging: 403 ...`).
    pub skipped: Vec<String>,
    /// Objects refused before validation (no name, too many of a kind), and why.
    pub refused: Vec<String>,
}

/// Lists every kind Palisade reads from the cluster `connection` names into `loader`: each object
/// becomes one document named by its URL. Objects go to the loader as the API server wrote them
/// (its unknown fields included): one malformed object is rejected there, with its kind, name and
/// field, and the others are kept.
pub fn list_into(
    connection: &crate::Connection,
    loader: &mut Loader,
) -> Result<Listed, SourceError> {
    let runtime = crate::runtime()?;
    runtime.block_on(async {
        let (client, server) = client(connection).await?;
        let lister = Lister {
            client: &client,
            server: &server,
            connection,
        };
        let mut listed = Listed {
            server: server.clone(),
            ..Listed::default()
        };
        let mut store = ObjectStore::new(&server, connection.max_objects);
        for listed_kind in KINDS {
            let kind = listed_kind.kind;
            let items = match lister.all(&listed_kind).await {
                Err(e) => match e.not_served(&listed_kind) {
                    Some(why) => {
                        listed.skipped.push(format!("{kind}: {why}"));
                        Vec::new()
                    }
                    None => return Err(e),
                },
                Ok((items, _)) => items,
            };
            listed.counts.push((kind.as_str(), items.len()));
            let (_, refused) = store.apply(ObjectEvent::Listed(kind, items));
            listed.refused.extend(refused);
        }
        loader.load_store(&store);
        let timeout = connection.request_timeout;
        for f in crate::foreign::foreign_policies(&client, &server, timeout).await {
            loader.note_unenforced(&f.api_version, &f.kind, &f.url, f.unreadable);
        }
        Ok(listed)
    })
}

/// Lists kinds, page by page, within bounds.
pub(crate) struct Lister<'a> {
    pub client: &'a Client,
    pub server: &'a str,
    pub connection: &'a crate::Connection,
}

/// Why a list, page by page, failed.
#[derive(Debug)]
pub(crate) enum ListFailure {
    /// A page did not come within the request timeout.
    Timeout(Duration),
    /// A page could not be had: an API error, an answer past its bytes.
    Fault(Fault),
    /// Past the bounds: more objects than allowed, or a page token seen before.
    Unbounded(String),
}

impl fmt::Display for ListFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListFailure::Timeout(timeout) => {
                write!(f, "no answer within {timeout:?} (--request-timeout)")
            }
            ListFailure::Fault(fault @ Fault::TooLarge(_)) => {
                write!(f, "{fault} (a page of {PAGE} objects)")
            }
            ListFailure::Fault(fault) => write!(f, "{fault}"),
            ListFailure::Unbounded(why) => f.write_str(why),
        }
    }
}

impl Lister<'_> {
    /// Every object of `listed`, as the API server wrote it, following the continue token, and
    /// the list's resource version (where a watch of it starts).
    pub async fn all(&self, listed: &ListedKind) -> Result<(Vec<Value>, String), SourceError> {
        let (kind, server) = (listed.kind, self.server.to_string());
        let request = |params: &ListParams| kube::core::Request::new(listed.path).list(params);
        let listed = self.pages(request, self.connection.max_objects).await;
        listed.map_err(|failure| match failure {
            ListFailure::Timeout(timeout) => SourceError::Timeout {
                kind,
                server,
                timeout,
            },
            ListFailure::Fault(ref fault) => SourceError::List {
                kind,
                server,
                code: fault.code(),
                why: match fault {
                    // The agent bounds a page as it bounds a manifest file.
                    Fault::TooLarge(_) => {
                        format!("{fault} (a page of {PAGE} objects; the agent's --max-file-size)")
                    }
                    _ => failure.to_string(),
                },
            },
            ListFailure::Unbounded(why) => SourceError::Unbounded { kind, server, why },
        })
    }

    /// Every object of the list `request` asks for (given each page's parameters), up to `max`,
    /// each page within the connection's request timeout and page bytes, and the list's resource
    /// version.
    pub async fn pages(
        &self,
        request: impl Fn(&ListParams) -> Result<http::Request<Vec<u8>>, kube::core::request::Error>,
        max: usize,
    ) -> Result<(Vec<Value>, String), ListFailure> {
        let timeout = self.connection.request_timeout;
        let mut objects = Vec::new();
        let mut tokens = std::collections::HashSet::new();
        let mut params = ListParams::default().limit(PAGE);
        loop {
            let request = request(&params).map_err(|e| {
                ListFailure::Fault(Fault::Other(format!("cannot ask for the next page: {e}")))
            })?;
            let bytes = self.connection.max_page_bytes;
            let page = crate::bounded::get(self.client, request, bytes);
            let page: ObjectList<Value> = tokio::time::timeout(timeout, page)
                .await
                .map_err(|_| ListFailure::Timeout(timeout))?
                .map_err(ListFailure::Fault)?;
            objects.extend(page.items);
            if objects.len() > max {
                return Err(ListFailure::Unbounded(format!("more than {max} objects")));
            }
            match page.metadata.continue_.filter(|token| !token.is_empty()) {
                Some(token) if !tokens.insert(token.clone()) => {
                    return Err(ListFailure::Unbounded(format!(
                        "the server repeated page token {token:?}"
                    )))
                }
                Some(token) => params = params.continue_token(&token),
                None => {
                    let version = page.metadata.resource_version.unwrap_or_default();
                    return Ok((objects, version));
                }
            }
        }
    }
}
