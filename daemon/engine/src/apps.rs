//! Applications: partitions of the host. Each may have a budget of workers
//! (counted by the global worker budget), memory and CPU (applied to its
//! cgroup where the host has cgroups).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use hearth_api::{AppBudgetOutcome, AppBudgetRequest, AppInfo, InvokeMode};
use hearth_sandbox::cgroup::AppBudget;
use hearth_sandbox::isolation::Isolation;
use hearth_store::{AppRecord, DynStore, StoreError};
use tracing::warn;

use crate::error::PublishError;
use crate::pool::Budget;

pub struct Apps {
    store: DynStore,
    budget: Option<Arc<Budget>>,
    isolation: Arc<Isolation>,
    /// How each application's functions may be called, for the call path
    /// (applications not here are open).
    invoke: RwLock<HashMap<String, InvokeMode>>,
}

impl Apps {
    pub(crate) fn new(
        store: DynStore,
        budget: Option<Arc<Budget>>,
        isolation: Arc<Isolation>,
    ) -> Apps {
        Apps {
            store,
            budget,
            isolation,
            invoke: RwLock::new(HashMap::new()),
        }
    }

    /// Set an application's budget: stored, counted by the worker budget,
    /// and applied to its cgroup (memory, CPU) where the host has cgroups.
    pub async fn set(
        &self,
        name: &str,
        budget: &AppBudgetRequest,
    ) -> Result<AppBudgetOutcome, PublishError> {
        let invoke = match budget.invoke {
            Some(mode) => mode,
            None => self.invoke_mode(name),
        };
        let app = AppRecord {
            name: name.to_owned(),
            max_workers: budget.max_workers,
            memory_mb: budget.memory_mb,
            cpu_percent: budget.cpu_percent,
            invoke,
        };
        self.store.set_app(&app).await?;
        let enforced = self.apply(&app);
        Ok(AppBudgetOutcome {
            name: app.name,
            max_workers: app.max_workers,
            memory_mb: app.memory_mb,
            cpu_percent: app.cpu_percent,
            invoke: app.invoke,
            memory_cpu_enforced: enforced,
        })
    }

    /// Apply every stored application budget (at start).
    pub async fn apply_stored(&self) -> Result<(), StoreError> {
        for app in self.store.apps().await? {
            self.apply(&app);
        }
        Ok(())
    }

    /// Re-read how each application is invoked (another process sharing
    /// the store may have changed it).
    pub async fn refresh_invoke_modes(&self) -> Result<(), StoreError> {
        let modes: HashMap<String, InvokeMode> = self
            .store
            .apps()
            .await?
            .into_iter()
            .map(|a| (a.name, a.invoke))
            .collect();
        if let Ok(mut map) = self.invoke.write() {
            *map = modes;
        }
        Ok(())
    }

    /// How `app`'s functions may be called (open if unknown).
    pub fn invoke_mode(&self, app: &str) -> InvokeMode {
        self.invoke
            .read()
            .ok()
            .and_then(|m| m.get(app).copied())
            .unwrap_or_default()
    }

    /// Returns whether memory and CPU are enforced.
    fn apply(&self, app: &AppRecord) -> bool {
        if let Ok(mut map) = self.invoke.write() {
            map.insert(app.name.clone(), app.invoke);
        }
        if let Some(budget) = &self.budget {
            budget.set_app_budget(&app.name, app.max_workers as usize);
        }
        match &self.isolation.cgroups {
            Some(cgroups) => match cgroups.app(
                &app.name,
                &AppBudget {
                    memory_mb: app.memory_mb,
                    cpu_millicores: app.cpu_percent.saturating_mul(10),
                },
            ) {
                Ok(()) => true,
                Err(e) => {
                    warn!(app = %app.name, error = %e, "cannot apply the application's memory/CPU budget");
                    false
                }
            },
            None => false,
        }
    }

    /// Applications with their budgets and current workers.
    pub async fn list(&self) -> Result<Vec<AppInfo>, StoreError> {
        let usage = self
            .budget
            .as_ref()
            .map(|b| b.app_usage())
            .unwrap_or_default();
        let enforced = self.isolation.cgroups.is_some();
        Ok(self
            .store
            .apps()
            .await?
            .into_iter()
            .map(|a| AppInfo {
                workers: usage
                    .iter()
                    .find(|u| u.app == a.name)
                    .map(|u| u.workers)
                    .unwrap_or(0),
                name: a.name,
                max_workers: a.max_workers,
                memory_mb: a.memory_mb,
                cpu_percent: a.cpu_percent,
                invoke: a.invoke,
                memory_cpu_enforced: enforced,
            })
            .collect())
    }
}
