//! Deploy: store a bundle as a version of its function, prove it loads, and
//! (unless told not to) make it live.

use hearth_api::bundle::Bundle;
use hearth_api::DeployOutcome;
use tokio::sync::OwnedSemaphorePermit;

use crate::deps::Progress;
use crate::error::PublishError;
use crate::events::Event;
use crate::releases::Releases;
use crate::router::Blocked;

/// What a deploy does once the version is stored.
#[derive(Debug, Clone, Copy)]
pub struct DeployOptions {
    /// Make it live (after proving it loads).
    pub publish: bool,
    /// Publish even if its input schema can break callers of the live
    /// version.
    pub allow_breaking: bool,
}

impl Releases {
    /// Store the bundle as a version of its function and, if `publish`,
    /// make it live once a worker has loaded it. Every path of the bundle
    /// is checked before anything is stored. `slot` (the gateway's bound on
    /// deploy bodies in memory) is released, with the bundle, as soon as
    /// the version is stored.
    pub async fn deploy(
        &self,
        bundle: Bundle,
        message: &str,
        DeployOptions {
            publish,
            allow_breaking,
        }: DeployOptions,
        actor: &str,
        progress: &Progress,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Result<DeployOutcome, PublishError> {
        let v = &self.versions;
        let manifest = bundle.validate()?;
        let runtime = if manifest.is_page() {
            self.check_page_members(&manifest).await?;
            hearth_api::manifest::RuntimeKind::Page
        } else {
            v.runtimes.get(manifest.runtime)?.kind
        };
        let function = manifest.name.clone();
        let lock = self.locks.of(&function);
        let _guard = lock.lock().await;

        let put = v.store.put_version(&manifest, &bundle, message).await?;
        // From here on the code is read back from the store.
        drop(bundle);
        drop(slot);
        progress.say(if put.created {
            format!("stored {function} version {}", put.version)
        } else {
            format!("same code as {function} version {}", put.version)
        });
        let live_before = v
            .store
            .function(&function)
            .await?
            .and_then(|f| f.live_version);
        // Deployed again, a deleted function is back (an offline one stays
        // offline).
        let offline = v.refresh_blocked(&function).await? == Some(Blocked::Offline);
        v.shared.events.emit(Event::VersionStored {
            function: &function,
            version: put.version,
            created: put.created,
            runtime: runtime.as_str(),
        });

        let mut outcome = DeployOutcome {
            function: function.clone(),
            version: put.version,
            created: put.created,
            hash: put.hash,
            live: live_before == Some(put.version),
            previous: live_before,
            load_ms: None,
            breaking: Vec::new(),
            offline,
        };
        let pool = match v.pool_with_progress(&function, put.version, progress).await {
            Err(PublishError::Deps(error)) => {
                return Err(PublishError::DepsFailed {
                    version: put.version,
                    live: live_before,
                    error,
                })
            }
            // A version whose code cannot be written to disk could never
            // run: take it back, so the deploy stores nothing.
            Err(PublishError::Code(error)) if put.created => {
                let taken_back = match v.store.delete_versions(&function, &[put.version]).await {
                    Ok(deleted) => deleted == [put.version],
                    Err(e) => {
                        tracing::warn!(function = %function, version = put.version, error = %e, "cannot take back a version whose code could not be written");
                        false
                    }
                };
                return Err(PublishError::Unwritable { error, taken_back });
            }
            other => other?,
        };
        if outcome.live {
            return Ok(outcome);
        }
        // Even without publishing, prove the code loads (so the deploy
        // reports an import error now) and keep that worker warm for a
        // publish within the grace period.
        if runtime == hearth_api::manifest::RuntimeKind::Page {
            progress.say("a page: its fields' functions are there");
        } else {
            progress.say("starting a worker and loading the code…");
        }
        outcome.load_ms = match v.prove_loads(&pool, &function, put.version).await {
            Ok(ms) => ms,
            Err(PublishError::LoadFailed { error, .. }) => {
                v.shared.events.emit(Event::LoadFailed {
                    function: &function,
                    version: put.version,
                    kind: &error.kind,
                });
                return Err(PublishError::LoadFailed {
                    function,
                    version: put.version,
                    created: put.created,
                    live: live_before,
                    error,
                });
            }
            Err(e) => return Err(e),
        };
        if !publish {
            if offline {
                v.close_function(&function);
            } else {
                v.retire(pool);
            }
            return Ok(outcome);
        }
        let record = v.record(&function, put.version).await?;
        outcome.breaking = match self
            .breaking_changes(&function, &record, allow_breaking)
            .await
        {
            Ok(changes) => changes,
            Err(e) => {
                v.retire(pool);
                return Err(e);
            }
        };
        for c in &outcome.breaking {
            progress.say(format!(
                "warning: published with a breaking input change (--allow-breaking): {} {}",
                if c.pointer.is_empty() {
                    "the input:"
                } else {
                    &c.pointer
                },
                c.change
            ));
        }
        outcome.previous = v
            .store
            .release(&function, &record, "publish", message, actor)
            .await?;
        outcome.offline = v.refresh_blocked(&function).await? == Some(Blocked::Offline);
        v.route(vec![(function.clone(), pool)]);
        outcome.live = true;
        v.shared.events.emit(Event::Released {
            function: &function,
            version: put.version,
            previous: outcome.previous,
            action: "publish",
        });
        Ok(outcome)
    }

    /// Every function a page's fields name is there: deployed and not
    /// deleted, not a page, with the version or alias the field asks for.
    /// What is not is refused naming the field (`fields.PATH.fn`).
    async fn check_page_members(
        &self,
        manifest: &hearth_api::manifest::Manifest,
    ) -> Result<(), PublishError> {
        use hearth_api::page::Selector;
        let Some(template) = manifest.template() else {
            return Ok(());
        };
        let template = template.map_err(|e| PublishError::BadPage {
            function: manifest.name.clone(),
            version: 0,
            problem: e.to_string(),
        })?;
        let store = &self.versions.store;
        let mut aliases = None;
        for field in &template.fields {
            let f = &field.function;
            let refuse = |problem: String| PublishError::PageMember {
                page: manifest.name.clone(),
                at: format!("fields.{}.fn", field.path),
                problem,
            };
            let record = store.function(&f.name).await?;
            let record = match record {
                Some(r) if r.deleted_at.is_none() => r,
                Some(_) => {
                    return Err(refuse(format!(
                        "names {}, which was deleted; deploy it again or fill the field with another function",
                        f.name
                    )))
                }
                None => {
                    return Err(refuse(format!(
                        "names {}, which is not deployed; `hearth list` shows the functions there are",
                        f.name
                    )))
                }
            };
            if record.kind == hearth_api::metadata::FunctionType::Page {
                return Err(refuse(format!(
                    "names {}, which is a page; a field is filled by a function (a datasource, field or function)",
                    f.name
                )));
            }
            match &f.selector {
                Selector::Live => {}
                Selector::Version(n) => {
                    if store.version(&f.name, *n).await?.is_none() {
                        return Err(refuse(format!(
                            "names {}@{n}, but {} has no version {n} (its latest is {})",
                            f.name, f.name, record.versions
                        )));
                    }
                }
                Selector::Alias(a) => {
                    if aliases.is_none() {
                        aliases = Some(store.aliases().await?);
                    }
                    let known = aliases
                        .iter()
                        .flatten()
                        .any(|r| r.function == f.name && r.alias == *a);
                    if !known {
                        return Err(refuse(format!(
                            "names {}@{a}, but {} has no alias {a}; make it with `hearth alias {} {a} --version N`",
                            f.name, f.name, f.name
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
