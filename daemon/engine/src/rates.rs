//! Per-function rate limits (`limits.rate_per_second` and `rate_burst` in
//! hearth.toml): past its rate a function's calls, by whatever path they
//! come, get 429 `rate_limited` with Retry-After, and are counted. One
//! limiter per function (shared by its versions), remade when its live
//! manifest changes the rate.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hearth_api::manifest::Limits;
use hearth_api::{ApiError, ErrorCode};

struct Gate {
    rate: (u32, u32),
    limiter: DefaultDirectRateLimiter,
}

#[derive(Default)]
pub struct RateGates {
    gates: RwLock<HashMap<String, Arc<Gate>>>,
    throttled: AtomicU64,
}

impl RateGates {
    /// Ok, or the 429 for a call to `function` over its rate.
    pub fn check(&self, function: &str, limits: &Limits) -> Result<(), ApiError> {
        let Some(per_second) = NonZeroU32::new(limits.rate_per_second) else {
            return Ok(());
        };
        let burst = NonZeroU32::new(limits.rate_burst).unwrap_or(per_second);
        let rate = (per_second.get(), burst.get());
        let gate = self
            .gates
            .read()
            .ok()
            .and_then(|g| g.get(function).cloned())
            .filter(|g| g.rate == rate);
        let gate = match gate {
            Some(g) => g,
            None => {
                let g = Arc::new(Gate {
                    rate,
                    limiter: RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)),
                });
                if let Ok(mut gates) = self.gates.write() {
                    gates.insert(function.to_owned(), g.clone());
                }
                g
            }
        };
        match gate.limiter.check() {
            Ok(()) => Ok(()),
            Err(not_until) => {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                let wait: Duration = not_until.wait_time_from(DefaultClock::default().now());
                Err(ApiError::new(
                    ErrorCode::RateLimited,
                    format!(
                        "{function} is over its rate of {} calls per second (burst {})",
                        rate.0, rate.1
                    ),
                    "retry after the time in Retry-After, or raise limits.rate_per_second (and rate_burst) in the function's hearth.toml and deploy again",
                )
                .function(function, None)
                .retry_after(wait.as_secs().max(1)))
            }
        }
    }

    /// Calls refused for their function's rate since the start.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }
}
