//! Rate limits on management requests, per token (governor's GCRA): past
//! its rate a token's requests get 429 with Retry-After, and are counted.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Requests per second with a burst (0 per second: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Rate {
    pub const NONE: Rate = Rate {
        per_second: 0,
        burst: 0,
    };

    /// `N/s`, `N/s burst M`, `N/m` or `0` (no limit).
    pub fn parse(s: &str) -> Result<Rate, String> {
        let s = s.trim();
        if s == "0" || s == "none" {
            return Ok(Rate::NONE);
        }
        let bad = || {
            format!("\"{s}\" is not a rate; write it as N/s, N/m or \"N/s burst M\" (0: no limit)")
        };
        let (rate, burst) = match s.split_once(" burst ") {
            Some((r, b)) => (r.trim(), Some(b.trim().parse::<u32>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let (n, unit) = rate.split_once('/').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        let per_second = match unit.trim() {
            "s" | "sec" | "second" => n,
            "m" | "min" | "minute" => n.div_ceil(60),
            _ => return Err(bad()),
        };
        if n == 0 {
            return Ok(Rate::NONE);
        }
        Ok(Rate {
            per_second: per_second.max(1),
            burst: burst.unwrap_or(n).max(1),
        })
    }

    fn quota(self) -> Option<Quota> {
        let per_second = NonZeroU32::new(self.per_second)?;
        let burst = NonZeroU32::new(self.burst.max(1))?;
        Some(Quota::per_second(per_second).allow_burst(burst))
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.per_second == 0 {
            f.write_str("0")
        } else {
            write!(f, "{}/s burst {}", self.per_second, self.burst)
        }
    }
}

struct Limiter {
    rate: Rate,
    keyed: Option<DefaultKeyedRateLimiter<String>>,
}

/// Per-token limits on management requests.
pub struct RateLimits {
    limiter: RwLock<Arc<Limiter>>,
    throttled: AtomicU64,
}

impl RateLimits {
    pub fn new(rate: Rate) -> RateLimits {
        RateLimits {
            limiter: RwLock::new(Arc::new(Limiter {
                rate,
                keyed: rate.quota().map(RateLimiter::keyed),
            })),
            throttled: AtomicU64::new(0),
        }
    }

    pub fn rate(&self) -> Rate {
        self.limiter.read().map(|l| l.rate).unwrap_or(Rate::NONE)
    }

    /// Change the rate (on reload); tokens start afresh if it changed.
    pub fn set_rate(&self, rate: Rate) {
        if self.rate() == rate {
            return;
        }
        if let Ok(mut l) = self.limiter.write() {
            *l = Arc::new(Limiter {
                rate,
                keyed: rate.quota().map(RateLimiter::keyed),
            });
        }
    }

    /// Ok, or how long the token should wait.
    pub fn check(&self, token: &str) -> Result<(), Duration> {
        let Some(limiter) = self.limiter.read().ok().map(|l| l.clone()) else {
            return Ok(());
        };
        let Some(keyed) = &limiter.keyed else {
            return Ok(());
        };
        match keyed.check_key(&token.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                Err(not_until.wait_time_from(DefaultClock::default().now()))
            }
        }
    }

    /// Requests refused for their rate since the start.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// Forget tokens that have not been seen lately (call now and then).
    pub fn forget_idle(&self) {
        if let Some(limiter) = self.limiter.read().ok().map(|l| l.clone()) {
            if let Some(keyed) = &limiter.keyed {
                keyed.retain_recent();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(
            Rate::parse("20/s").expect("rate"),
            Rate {
                per_second: 20,
                burst: 20
            }
        );
        assert_eq!(
            Rate::parse("5/s burst 50").expect("rate"),
            Rate {
                per_second: 5,
                burst: 50
            }
        );
        assert_eq!(Rate::parse("0").expect("rate"), Rate::NONE);
        assert!(Rate::parse("fast").is_err());
        assert!(Rate::parse("5/h").is_err());
    }

    #[test]
    fn a_token_past_its_burst_waits() {
        let limits = RateLimits::new(Rate {
            per_second: 1,
            burst: 3,
        });
        for _ in 0..3 {
            assert!(limits.check("a").is_ok());
        }
        let wait = limits.check("a").expect_err("throttled");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(limits.check("b").is_ok(), "each token has its own");
        assert_eq!(limits.throttled(), 1);
        limits.set_rate(Rate::NONE);
        assert!(limits.check("a").is_ok());
    }
}
