//! What one client may ask of the server: per-connection rate limits (token
//! buckets on sync messages, awareness messages and bytes), connection caps
//! (global, per app, per client address), the budget of refused upgrades per
//! client address ([`Limiters::refusals_exceeded`]) and the host API's request
//! rate per app.
//!
//! Bookkeeping only: time is passed in, nothing here sleeps, reads a socket or
//! answers a request. The connection task applies a [`Admission`] (it stops reading
//! its socket for the wait, which pushes back on that sender alone); the upgrade and
//! host API handlers turn a refusal into 503 / 429 with `Retry-After`.

use crate::config::{AppLimits, Limits};
use chorus_protocol::{Message, SyncMessage};
use dashmap::DashMap;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens a second, at most `burst` saved up. A cost larger
/// than what is there is still admitted, after a wait (the bucket goes into debt),
/// so a message larger than the burst passes slowly instead of never.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket. A `rate` of 0 admits everything at once (no limit).
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        TokenBucket {
            rate,
            burst: burst.max(1.0),
            tokens: burst.max(1.0),
            at: now,
        }
    }

    /// Take `cost` tokens; how long the taker must wait before it may go on
    /// (zero: at once).
    pub fn take(&mut self, cost: f64, now: Instant) -> Duration {
        if self.rate <= 0.0 {
            return Duration::ZERO;
        }
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst) - cost;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    /// Whether the bucket would be full at `now` (it has forgotten every taking).
    fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }
}

/// The buckets a class of message draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageClass {
    /// Sync messages (step 1, step 2, update) and the extension messages a client
    /// sends: each makes the document actor work.
    Document,
    /// Awareness updates and queries: cursor moves are chatty and cheap.
    Awareness,
}

impl MessageClass {
    /// The class of a decoded message.
    pub fn of(msg: &Message) -> Self {
        match msg {
            Message::Awareness(_) | Message::QueryAwareness => MessageClass::Awareness,
            Message::Sync(
                SyncMessage::Step1(_) | SyncMessage::Step2(_) | SyncMessage::Update(_),
            )
            | Message::PermissionDenied(_)
            | Message::Chorus(_) => MessageClass::Document,
        }
    }
}

/// What the connection does with a message it just read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Pass it on now.
    Now,
    /// Hold it (and read nothing more) until this instant. `first` when this starts
    /// a throttled spell: an opted-in client is told once.
    Wait {
        /// When the message may be passed on.
        until: Instant,
        /// The first wait since the connection was last under its limits.
        first: bool,
    },
    /// The connection has been over its limits for too long: close it with 4429.
    Close,
}

/// One connection's rate limits.
#[derive(Debug, Clone)]
pub struct ConnectionLimiter {
    document: TokenBucket,
    awareness: TokenBucket,
    bytes: TokenBucket,
    /// Since when every message had to wait (the start of the throttled spell).
    throttled_since: Option<Instant>,
    close_after: Duration,
}

impl ConnectionLimiter {
    /// Buckets full, as `limits` says.
    pub fn new(limits: &RateLimits, now: Instant) -> Self {
        ConnectionLimiter {
            document: TokenBucket::new(limits.messages_per_sec, limits.messages_burst, now),
            awareness: TokenBucket::new(limits.awareness_per_sec, limits.awareness_burst, now),
            bytes: TokenBucket::new(limits.bytes_per_sec, limits.bytes_burst, now),
            throttled_since: None,
            close_after: limits.throttle_close_after,
        }
    }

    /// Account for one message of `class` and `len` bytes read at `now`.
    pub fn admit(&mut self, class: MessageClass, len: usize, now: Instant) -> Admission {
        let messages = match class {
            MessageClass::Document => &mut self.document,
            MessageClass::Awareness => &mut self.awareness,
        };
        let wait = messages
            .take(1.0, now)
            .max(self.bytes.take(len as f64, now));
        if wait.is_zero() {
            self.throttled_since = None;
            return Admission::Now;
        }
        match self.throttled_since {
            None => {
                self.throttled_since = Some(now);
                Admission::Wait {
                    until: now + wait,
                    first: true,
                }
            }
            Some(since) if now.saturating_duration_since(since) >= self.close_after => {
                Admission::Close
            }
            Some(_) => Admission::Wait {
                until: now + wait,
                first: false,
            },
        }
    }
}

/// The per-connection rate limits in force for one app.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    /// Sync and extension messages a second (0: unlimited).
    pub messages_per_sec: f64,
    /// Sync and extension messages that may come at once.
    pub messages_burst: f64,
    /// Awareness messages a second (0: unlimited).
    pub awareness_per_sec: f64,
    /// Awareness messages that may come at once.
    pub awareness_burst: f64,
    /// Bytes a second, every message counted (0: unlimited).
    pub bytes_per_sec: f64,
    /// Bytes that may come at once.
    pub bytes_burst: f64,
    /// A connection throttled this long without a break is closed (4429).
    pub throttle_close_after: Duration,
}

impl RateLimits {
    fn resolve(global: &Limits, app: &AppLimits) -> Self {
        let pick = |own: Option<u64>, global: u64| own.unwrap_or(global) as f64;
        RateLimits {
            messages_per_sec: pick(app.messages_per_sec, global.messages_per_sec),
            messages_burst: pick(app.messages_burst, global.messages_burst),
            awareness_per_sec: pick(app.awareness_per_sec, global.awareness_per_sec),
            awareness_burst: pick(app.awareness_burst, global.awareness_burst),
            bytes_per_sec: pick(app.bytes_per_sec, global.bytes_per_sec),
            bytes_burst: pick(app.bytes_burst, global.bytes_burst),
            throttle_close_after: Duration::from_secs(global.throttle_close_secs),
        }
    }
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CapExceeded {
    /// `max_connections`: the whole server.
    #[error("the server has max_connections open")]
    Global,
    /// The app's `max_connections`.
    #[error("the app has its max_connections open")]
    App,
    /// `max_connections_per_address`: one client address.
    #[error("this address has max_connections_per_address open")]
    Address,
}

impl CapExceeded {
    /// The stable reason (metrics label, error code).
    pub fn reason(self) -> &'static str {
        match self {
            CapExceeded::Global => "server-full",
            CapExceeded::App => "app-full",
            CapExceeded::Address => "address-full",
        }
    }
}

/// The host API's request rate of one app was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the app sends host API requests faster than host_requests_per_sec")]
pub struct HostRateExceeded {
    /// When a request would be admitted again.
    pub retry_after: Duration,
}

/// Joins are coming faster than `joins_per_sec` and the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("joins are coming faster than joins_per_sec and join_wait_secs is full")]
pub struct JoinsExceeded {
    /// When a join would be admitted.
    pub retry_after: Duration,
}

/// One client address made more refused upgrades than `refused_upgrades_per_sec`
/// allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this address made more refused upgrades than refused_upgrades_per_sec allows")]
pub struct RefusalsExceeded {
    /// When an upgrade from the address would be looked at again.
    pub retry_after: Duration,
}

/// Refused upgrades per client address: a token bucket each, charged once per
/// refusal. An address in debt is refused before its token is looked at.
#[derive(Debug)]
struct RefusalBudget {
    rate: f64,
    burst: f64,
    buckets: DashMap<IpAddr, TokenBucket>,
    /// Charges since the map was last pruned of addresses whose bucket is full
    /// again (they cost memory and remember nothing).
    since_prune: AtomicUsize,
}

/// Charges between two prunes of [`RefusalBudget::buckets`].
const PRUNE_EVERY: usize = 1024;

impl RefusalBudget {
    /// Whether `address` is in debt at `now`, and for how long.
    fn exceeded(&self, address: IpAddr, now: Instant) -> Result<(), RefusalsExceeded> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let Some(mut bucket) = self.buckets.get_mut(&address) else {
            return Ok(());
        };
        let wait = bucket.take(0.0, now);
        if wait.is_zero() {
            Ok(())
        } else {
            Err(RefusalsExceeded { retry_after: wait })
        }
    }

    /// One more refused upgrade from `address` at `now`.
    fn charge(&self, address: IpAddr, now: Instant) {
        if self.rate <= 0.0 {
            return;
        }
        self.buckets
            .entry(address)
            .or_insert_with(|| TokenBucket::new(self.rate, self.burst, now))
            .take(1.0, now);
        if self.since_prune.fetch_add(1, Ordering::Relaxed) + 1 >= PRUNE_EVERY {
            self.since_prune.store(0, Ordering::Relaxed);
            self.buckets.retain(|_, b| !b.is_full(now));
        }
    }
}

/// Every limit of one server, with the counts and buckets they are checked against.
#[derive(Debug)]
pub struct Limiters {
    rates: HashMap<String, Arc<RateLimits>>,
    default_rates: Arc<RateLimits>,
    max_connections: usize,
    app_caps: HashMap<String, usize>,
    max_per_address: usize,
    open: Arc<AtomicUsize>,
    per_app: Counts<Arc<str>>,
    per_address: Counts<IpAddr>,
    host_rates: HashMap<String, (f64, f64)>,
    default_host_rate: (f64, f64),
    host_buckets: DashMap<String, Mutex<TokenBucket>>,
    joins: Mutex<TokenBucket>,
    join_wait: Duration,
    refusals: RefusalBudget,
}

impl Limiters {
    /// The limits `global` sets, with each app's overrides.
    pub fn new<'a>(
        global: &Limits,
        apps: impl IntoIterator<Item = (&'a str, &'a AppLimits)>,
    ) -> Self {
        let none = AppLimits::default();
        let host_rate = |app: &AppLimits| {
            (
                app.host_requests_per_sec
                    .unwrap_or(global.host_requests_per_sec) as f64,
                app.host_requests_burst
                    .unwrap_or(global.host_requests_burst) as f64,
            )
        };
        let mut rates = HashMap::new();
        let mut app_caps = HashMap::new();
        let mut host_rates = HashMap::new();
        for (id, own) in apps {
            rates.insert(id.to_owned(), Arc::new(RateLimits::resolve(global, own)));
            app_caps.insert(
                id.to_owned(),
                own.max_connections
                    .unwrap_or(global.max_connections_per_app),
            );
            host_rates.insert(id.to_owned(), host_rate(own));
        }
        Limiters {
            rates,
            default_rates: Arc::new(RateLimits::resolve(global, &none)),
            max_connections: global.max_connections,
            app_caps,
            max_per_address: global.max_connections_per_address,
            open: Arc::default(),
            per_app: Arc::default(),
            per_address: Arc::default(),
            host_rates,
            default_host_rate: host_rate(&none),
            host_buckets: DashMap::new(),
            joins: Mutex::new(TokenBucket::new(
                global.joins_per_sec as f64,
                global.joins_burst as f64,
                Instant::now(),
            )),
            join_wait: Duration::from_secs(global.join_wait_secs),
            refusals: RefusalBudget {
                rate: global.refused_upgrades_per_sec as f64,
                burst: global.refused_upgrades_burst as f64,
                buckets: DashMap::new(),
                since_prune: AtomicUsize::new(0),
            },
        }
    }

    /// Whether `address` spent its budget of refused upgrades (`Err`: refuse this
    /// upgrade now, before any token work). Without an address (a router driven
    /// in-process) there is no budget.
    pub fn refusals_exceeded(
        &self,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), RefusalsExceeded> {
        address.map_or(Ok(()), |a| self.refusals.exceeded(a, now))
    }

    /// Charge one refused upgrade (bad token, unknown app, bad content id) to
    /// `address`.
    pub fn charge_refusal(&self, address: Option<IpAddr>, now: Instant) {
        if let Some(address) = address {
            self.refusals.charge(address, now);
        }
    }

    /// The rate limits of `app`'s connections.
    pub fn rates(&self, app: &str) -> Arc<RateLimits> {
        self.rates.get(app).unwrap_or(&self.default_rates).clone()
    }

    /// Take a connection slot for `app` from `address`, or say which cap is full.
    /// The slot is given back when the returned value is dropped.
    pub fn open_connection(
        &self,
        app: &str,
        address: Option<IpAddr>,
    ) -> Result<ConnectionSlot, CapExceeded> {
        self.open(Some(app), address)
    }

    /// A slot for a socket opened only to carry a refusal's close code: under the
    /// global and address caps, but no app's (the app is not known to be real, and
    /// its cap must not tell a caller without a token whether it is).
    pub fn open_refused(&self, address: Option<IpAddr>) -> Result<ConnectionSlot, CapExceeded> {
        self.open(None, address)
    }

    fn open(
        &self,
        app: Option<&str>,
        address: Option<IpAddr>,
    ) -> Result<ConnectionSlot, CapExceeded> {
        let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        let mut slot = ConnectionSlot {
            open: self.open.clone(),
            app: None,
            address: None,
        };
        if self.max_connections > 0 && open > self.max_connections {
            return Err(CapExceeded::Global);
        }
        if let Some(app) = app {
            let app_cap = self.app_caps.get(app).copied().unwrap_or(0);
            let app: Arc<str> = app.into();
            let mut count = self.per_app.entry(app.clone()).or_insert(0);
            *count += 1;
            slot.app = Some((self.per_app.clone(), app));
            if app_cap > 0 && *count > app_cap {
                drop(count);
                return Err(CapExceeded::App);
            }
        }
        if let Some(address) = address {
            let mut count = self.per_address.entry(address).or_insert(0);
            *count += 1;
            slot.address = Some((self.per_address.clone(), address));
            if self.max_per_address > 0 && *count > self.max_per_address {
                drop(count);
                return Err(CapExceeded::Address);
            }
        }
        Ok(slot)
    }

    /// Admission control: a join (an upgrade with a valid token) at `now` takes its
    /// place in the node's join rate. `Ok(wait)`: go on after `wait` (zero when the
    /// rate has room); refused when the wait would pass `join_wait_secs`, which
    /// bounds how many joins wait at once. A reconnect storm is admitted at the
    /// rate, in the order it came, instead of all at once.
    pub fn admit_join(&self, now: Instant) -> Result<Duration, JoinsExceeded> {
        let mut joins = self.joins.lock().unwrap_or_else(PoisonError::into_inner);
        let wait = joins.take(1.0, now);
        if wait <= self.join_wait {
            return Ok(wait);
        }
        joins.tokens += 1.0;
        Err(JoinsExceeded {
            retry_after: wait - self.join_wait,
        })
    }

    /// Count one host API request of `app` at `now`.
    pub fn host_request(&self, app: &str, now: Instant) -> Result<(), HostRateExceeded> {
        let (rate, burst) = self
            .host_rates
            .get(app)
            .copied()
            .unwrap_or(self.default_host_rate);
        if rate <= 0.0 {
            return Ok(());
        }
        let bucket = self
            .host_buckets
            .entry(app.to_owned())
            .or_insert_with(|| Mutex::new(TokenBucket::new(rate, burst, now)));
        let mut bucket = bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let wait = bucket.take(1.0, now);
        if wait.is_zero() {
            return Ok(());
        }
        // A refused request costs nothing: give the token back.
        bucket.tokens += 1.0;
        Err(HostRateExceeded { retry_after: wait })
    }
}

/// Open connections per key (app or address); keys at zero are removed.
type Counts<K> = Arc<DashMap<K, usize>>;

/// A connection's place under the caps; dropping it gives the place back.
#[derive(Debug)]
pub struct ConnectionSlot {
    open: Arc<AtomicUsize>,
    app: Option<(Counts<Arc<str>>, Arc<str>)>,
    address: Option<(Counts<IpAddr>, IpAddr)>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        if let Some((map, app)) = self.app.take() {
            map.remove_if_mut(&app, |_, n| {
                *n -= 1;
                *n == 0
            });
        }
        if let Some((map, address)) = self.address.take() {
            map.remove_if_mut(&address, |_, n| {
                *n -= 1;
                *n == 0
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_bucket_admits_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 5.0, t0);
        for _ in 0..5 {
            assert_eq!(b.take(1.0, t0), Duration::ZERO);
        }
        // The sixth waits a tenth of a second; the seventh, taken at once, two.
        assert_eq!(b.take(1.0, t0), secs(0.1));
        assert_eq!(b.take(1.0, t0), secs(0.2));
        // After a second the debt is paid and 8 tokens are back (capped at 5).
        assert_eq!(b.take(5.0, t0 + secs(1.2)), Duration::ZERO);
        assert!(b.take(1.0, t0 + secs(1.2)) > Duration::ZERO);
    }

    #[test]
    fn a_cost_over_the_burst_passes_after_a_wait() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100.0, 50.0, t0);
        assert_eq!(b.take(250.0, t0), secs(2.0));
    }

    #[test]
    fn a_zero_rate_is_no_limit() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0.0, 0.0, t0);
        for _ in 0..10_000 {
            assert_eq!(b.take(1e9, t0), Duration::ZERO);
        }
    }

    fn limits() -> RateLimits {
        RateLimits {
            messages_per_sec: 10.0,
            messages_burst: 10.0,
            awareness_per_sec: 5.0,
            awareness_burst: 5.0,
            bytes_per_sec: 1000.0,
            bytes_burst: 1000.0,
            throttle_close_after: secs(2.0),
        }
    }

    #[test]
    fn a_flood_waits_then_is_closed_once_it_never_lets_up() {
        let t0 = Instant::now();
        let mut c = ConnectionLimiter::new(&limits(), t0);
        for _ in 0..10 {
            assert_eq!(c.admit(MessageClass::Document, 10, t0), Admission::Now);
        }
        let Admission::Wait { until, first: true } = c.admit(MessageClass::Document, 10, t0) else {
            panic!("the eleventh waits");
        };
        assert_eq!(until, t0 + secs(0.1));
        // The sender keeps going as fast as it is let through: still throttled.
        let mut now = until;
        while now < t0 + secs(2.0) {
            match c.admit(MessageClass::Document, 10, now) {
                Admission::Wait { until, first } => {
                    assert!(!first);
                    now = until;
                }
                other => panic!("{other:?} at {:?}", now - t0),
            }
        }
        assert_eq!(c.admit(MessageClass::Document, 10, now), Admission::Close);
    }

    #[test]
    fn a_burst_that_lets_up_is_never_closed() {
        let t0 = Instant::now();
        let mut c = ConnectionLimiter::new(&limits(), t0);
        let mut now = t0;
        for round in 0..20 {
            // Twelve at once (over the burst), then a pause that refills the bucket.
            let mut waited = false;
            for _ in 0..12 {
                match c.admit(MessageClass::Document, 10, now) {
                    Admission::Now => {}
                    Admission::Wait { until, first } => {
                        assert_eq!(first, !waited, "round {round}");
                        waited = true;
                        now = until;
                    }
                    Admission::Close => panic!("closed in round {round}"),
                }
            }
            now += secs(1.5);
        }
    }

    #[test]
    fn awareness_has_its_own_bucket_and_bytes_are_shared() {
        let t0 = Instant::now();
        let mut c = ConnectionLimiter::new(&limits(), t0);
        for _ in 0..5 {
            assert_eq!(c.admit(MessageClass::Awareness, 1, t0), Admission::Now);
        }
        assert!(matches!(
            c.admit(MessageClass::Awareness, 1, t0),
            Admission::Wait { .. }
        ));
        // Cursor moves do not hold up document messages...
        assert_eq!(c.admit(MessageClass::Document, 1, t0), Admission::Now);
        // ...but bytes count across both (7 taken already; that one passed, so
        // this starts a new spell).
        assert_eq!(
            c.admit(MessageClass::Document, 2000, t0),
            Admission::Wait {
                until: t0 + secs(1.007),
                first: true
            }
        );
    }

    fn limiters(global: Limits, apps: &[(&str, AppLimits)]) -> Limiters {
        Limiters::new(&global, apps.iter().map(|(id, l)| (*id, l)))
    }

    #[test]
    fn caps_count_open_slots_and_give_them_back() {
        let global = Limits {
            max_connections: 4,
            max_connections_per_app: 2,
            max_connections_per_address: 0,
            ..Limits::default()
        };
        let wiki = AppLimits {
            max_connections: Some(1),
            ..AppLimits::default()
        };
        let l = limiters(global, &[("wiki", wiki), ("cms", AppLimits::default())]);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let open = |app: &str| l.open_connection(app, Some(a));
        let wiki1 = open("wiki").unwrap();
        assert_eq!(
            open("wiki").unwrap_err(),
            CapExceeded::App,
            "wiki's own cap"
        );
        let cms1 = open("cms").unwrap();
        let _cms2 = open("cms").unwrap();
        assert_eq!(
            open("cms").unwrap_err(),
            CapExceeded::App,
            "the per-app default"
        );
        let _news1 = open("news").unwrap();
        assert_eq!(open("news").unwrap_err(), CapExceeded::Global);
        drop(wiki1);
        drop(cms1);
        let _wiki = open("wiki").unwrap();
        let _news2 = open("news").unwrap();
        assert_eq!(open("cms").unwrap_err(), CapExceeded::Global);
        assert_eq!(l.open.load(Ordering::Relaxed), 4, "refusals hold no slot");
    }

    #[test]
    fn the_address_cap_is_per_address() {
        let global = Limits {
            max_connections_per_address: 2,
            ..Limits::default()
        };
        let l = limiters(global, &[]);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let _a1 = l.open_connection("wiki", Some(a)).unwrap();
        let a2 = l.open_connection("wiki", Some(a)).unwrap();
        assert_eq!(
            l.open_connection("wiki", Some(a)).unwrap_err(),
            CapExceeded::Address
        );
        let _b1 = l.open_connection("wiki", Some(b)).unwrap();
        drop(a2);
        let _a3 = l.open_connection("wiki", Some(a)).unwrap();
        assert_eq!(l.per_address.len(), 2);
    }

    #[test]
    fn joins_past_the_rate_wait_their_turn_and_past_the_queue_are_refused() {
        let global = Limits {
            joins_per_sec: 100,
            joins_burst: 10,
            join_wait_secs: 1,
            ..Limits::default()
        };
        let l = limiters(global, &[]);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(l.admit_join(t0), Ok(Duration::ZERO));
        }
        // The next hundred wait 10 ms more each: a queue one second long.
        for i in 1..=100 {
            assert_eq!(l.admit_join(t0), Ok(secs(i as f64 / 100.0)), "join {i}");
        }
        let refused = l.admit_join(t0).unwrap_err();
        assert_eq!(refused.retry_after, secs(0.01));
        // A refusal takes no place: half a second later, half the queue is gone.
        assert_eq!(l.admit_join(t0 + secs(0.5)), Ok(secs(0.51)));
        let off = limiters(
            Limits {
                joins_per_sec: 0,
                ..Limits::default()
            },
            &[],
        );
        for _ in 0..100_000 {
            assert_eq!(off.admit_join(t0), Ok(Duration::ZERO));
        }
    }

    #[test]
    fn refused_upgrades_are_charged_per_address_until_the_address_is_turned_away() {
        let global = Limits {
            refused_upgrades_per_sec: 2,
            refused_upgrades_burst: 3,
            ..Limits::default()
        };
        let l = limiters(global, &[]);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.refusals_exceeded(Some(a), t0).is_ok());
            l.charge_refusal(Some(a), t0);
        }
        // The burst is spent (to zero): still looked at; one more puts it in debt.
        assert!(l.refusals_exceeded(Some(a), t0).is_ok());
        l.charge_refusal(Some(a), t0);
        assert_eq!(
            l.refusals_exceeded(Some(a), t0).unwrap_err().retry_after,
            secs(0.5)
        );
        assert!(l.refusals_exceeded(Some(b), t0).is_ok(), "another address");
        assert!(
            l.refusals_exceeded(None, t0).is_ok(),
            "no address, no budget"
        );
        // Half a second pays the debt back.
        assert!(l.refusals_exceeded(Some(a), t0 + secs(0.5)).is_ok());
        // Buckets full again are pruned, every so many charges.
        for i in 0..PRUNE_EVERY as u32 {
            l.charge_refusal(Some(IpAddr::from(i.to_be_bytes())), t0);
        }
        assert!(l.refusals.buckets.len() > PRUNE_EVERY / 2);
        for _ in 0..PRUNE_EVERY {
            l.charge_refusal(Some(b), t0 + secs(10.0));
        }
        assert_eq!(l.refusals.buckets.len(), 1, "b alone is still in debt");
        let off = limiters(
            Limits {
                refused_upgrades_per_sec: 0,
                ..Limits::default()
            },
            &[],
        );
        for _ in 0..1000 {
            off.charge_refusal(Some(a), t0);
        }
        assert!(off.refusals_exceeded(Some(a), t0).is_ok());
    }

    #[test]
    fn host_requests_are_limited_per_app_and_refusals_cost_nothing() {
        let global = Limits {
            host_requests_per_sec: 10,
            host_requests_burst: 2,
            ..Limits::default()
        };
        let free = AppLimits {
            host_requests_per_sec: Some(0),
            ..AppLimits::default()
        };
        let l = limiters(global, &[("free", free)]);
        let t0 = Instant::now();
        assert!(l.host_request("wiki", t0).is_ok());
        assert!(l.host_request("wiki", t0).is_ok());
        let refused = l.host_request("wiki", t0).unwrap_err();
        assert_eq!(refused.retry_after, secs(0.1));
        // Refused again at once: the wait did not grow.
        assert_eq!(
            l.host_request("wiki", t0).unwrap_err().retry_after,
            secs(0.1)
        );
        assert!(l.host_request("wiki", t0 + secs(0.1)).is_ok());
        assert!(
            l.host_request("cms", t0).is_ok(),
            "another app, another bucket"
        );
        for _ in 0..1000 {
            assert!(l.host_request("free", t0).is_ok());
        }
    }
}
