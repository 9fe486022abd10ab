package auditlog

import (
	"fmt"
	"hash/maphash"
	"net/netip"
	"strings"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/keys/internal/clientip"
	"github.com/xroute/xroute/keys/internal/shardmap"
)

// Alert kinds.
const (
	AlertNewIP        = "new_ip"
	AlertRateSpike    = "rate_spike"
	AlertTokenSpike   = "token_spike"
	AlertAuthFailures = "auth_failures"
	AlertOffHours     = "off_hours"
	// AlertAuthGuessing is an address whose failed authentications (keys
	// that do not exist) started a block of the failed-auth throttle: no
	// key is named, the address is.
	AlertAuthGuessing = "auth_guessing"
)

const (
	// anomDedup: each alert kind fires at most once per key within it.
	anomDedup = 10 * time.Minute
	// anomMinMinutes is how many active minutes a baseline needs before
	// the spike rules trust it.
	anomMinMinutes = 30
	// anomAlpha weighs a completed minute into the baseline: an EWMA
	// spanning about an hour of active minutes.
	anomAlpha = 2.0 / 61
	// Absolute floors of the spike rules: a key going from 1 to 11
	// requests a minute is not a spike worth an alert.
	anomFloorRequests = 30
	anomFloorTokens   = 20000
	// anomMaxIPs is how many source addresses a key remembers (LRU).
	anomMaxIPs = 256
	// anomRoamingIPs: a key seen from this many addresses during its warmup
	// is not pinned to a few hosts (serverless egress, mobile clients), so
	// a new address says nothing and the new_ip rule stays quiet for it.
	anomRoamingIPs = 16
	// DefaultDetectorKeys bounds the keys a Detector tracks.
	DefaultDetectorKeys = 1 << 14
	// anomIdle: a key unseen for this long (or Warmup, if longer) is
	// forgotten by Sweep.
	anomIdle = 8 * 24 * time.Hour
	anomWeek = 7 * 24 * time.Hour
)

const (
	kindNewIP = iota
	kindRateSpike
	kindTokenSpike
	kindAuthFailures
	kindOffHours
	numKinds
)

var kindNames = [numKinds]string{AlertNewIP, AlertRateSpike, AlertTokenSpike, AlertAuthFailures, AlertOffHours}

// Observation is one finished request as the detector sees it. Status 401
// and 403 count as authentication failures of KeyID (revoked, expired,
// suspended, scope refused) and teach the detector nothing else.
type Observation struct {
	KeyID, AccountID, IP string
	At                   time.Time // zero: the detector's clock
	Tokens               int
	Status               int
}

// Alert is one anomaly. The caller acts on it (log + audit, webhook,
// suspend, as config.Anomaly.Action says); the detector only reports.
type Alert struct {
	KeyID, AccountID, Kind, Detail string
	// IP is the client address of an alert about an address rather than
	// a key (auth_guessing).
	IP string
	At time.Time
}

// Detector learns each key's normal use and reports departures from it.
// Per key it keeps a baseline of requests and tokens per active minute
// (EWMAs over completed minutes that saw traffic, so nights and weekends do
// not drag it to zero), the most recent source addresses (IPv6 grouped by
// /64) and the hours of the week (UTC) the key was used in.
//
// Rules, each firing at most once per key per 10 minutes:
//   - new_ip: a source address the key has not used, once Warmup of history
//     exists (addresses seen during warmup are learned silently; keys seen
//     from many addresses during warmup are exempt);
//   - rate_spike / token_spike: the current minute above SpikeFactor x the
//     baseline and above an absolute floor (30 requests, 20000 tokens), once
//     Warmup and 30 active minutes of history exist;
//   - auth_failures: AuthFailures 401/403 answers within a minute (sliding;
//     needs no history);
//   - off_hours (when enabled): use in an hour of the week the key was never
//     used in, once Warmup exists; during the key's first week, only an hour
//     of the day it was never used in counts.
//
// State lives in memory, per replica, and restarts its warmup with the
// process. It is safe for concurrent use.
type Detector struct {
	cfg      config.Anomaly
	now      func() time.Time
	seed     maphash.Seed
	perShard int
	idle     int64
	shards   [shardmap.Count]shardmap.Map[string, *anomKey]
}

type anomKey struct {
	accountID string
	first     int64 // first observation (ns)
	last      int64 // latest observation (ns)

	minute               int64 // current minute (unix minutes)
	reqs, tokens         int   // in the current minute
	auth, authPrev       int   // auth failures in the current and previous minute
	baseReqs, baseTokens float64
	minutes              int // active minutes folded into the baseline

	ips      map[netip.Addr]int64 // address -> last seen
	warmIPs  int                  // distinct addresses learned during warmup
	weekHour [3]uint64            // 168 bits: hours of the week used
	dayHour  uint32               // 24 bits: hours of the day used

	fired [numKinds]int64 // last alert per kind (ns; 0 = never)
}

// NewDetector returns a detector for cfg. Zero or invalid thresholds fall
// back to the defaults (spike factor 10, 20 auth failures).
func NewDetector(cfg config.Anomaly, now func() time.Time) *Detector {
	if cfg.SpikeFactor <= 1 {
		cfg.SpikeFactor = 10
	}
	if cfg.AuthFailures <= 0 {
		cfg.AuthFailures = 20
	}
	if cfg.Warmup < 0 {
		cfg.Warmup = 0
	}
	d := &Detector{
		cfg: cfg, now: now, seed: maphash.MakeSeed(),
		perShard: DefaultDetectorKeys / shardmap.Count,
		idle:     int64(max(anomIdle, cfg.Warmup)),
	}
	for i := range d.shards {
		d.shards[i].M = make(map[string]*anomKey)
	}
	return d
}

func isAuthFailure(status int) bool { return status == 401 || status == 403 }

// Observe records o and returns the alerts it raises (nil almost always).
func (d *Detector) Observe(o Observation) []Alert {
	if !d.cfg.Enabled || o.KeyID == "" {
		return nil
	}
	at := o.At
	if at.IsZero() {
		at = d.now()
	}
	atN := at.UnixNano()
	minute := atN / int64(time.Minute)

	s := &d.shards[maphash.String(d.seed, o.KeyID)&(shardmap.Count-1)]
	s.Mu.Lock()
	defer s.Mu.Unlock()
	k, ok := s.M[o.KeyID]
	if !ok {
		if len(s.M) >= d.perShard {
			shardmap.EvictOldest(s.M, atN, func(k *anomKey) int64 { return k.last + d.idle })
		}
		k = &anomKey{accountID: strings.Clone(o.AccountID), first: atN, last: atN, minute: minute,
			ips: make(map[netip.Addr]int64)}
		s.M[strings.Clone(o.KeyID)] = k
	}
	k.last = max(k.last, atN)
	if minute > k.minute {
		k.roll(minute)
	}

	var alerts []Alert
	fire := func(kind int, detail string) {
		if k.fired[kind] != 0 && atN-k.fired[kind] < int64(anomDedup) {
			return
		}
		k.fired[kind] = atN
		alerts = append(alerts, Alert{KeyID: o.KeyID, AccountID: k.accountID, Kind: kindNames[kind], Detail: detail, At: at})
	}

	if isAuthFailure(o.Status) {
		k.auth++
		// Sliding minute: the previous minute weighs by how much of it is
		// still within the last 60 s.
		into := float64(atN-k.minute*int64(time.Minute)) / float64(time.Minute)
		if est := float64(k.authPrev)*(1-into) + float64(k.auth); est >= float64(d.cfg.AuthFailures) {
			fire(kindAuthFailures, fmt.Sprintf("%d authentication failures (401/403) within a minute", int(est)))
		}
		return alerts
	}

	k.reqs++
	k.tokens += max(o.Tokens, 0)
	warm := atN-k.first >= int64(d.cfg.Warmup)

	if warm && k.minutes >= anomMinMinutes {
		if lim := max(d.cfg.SpikeFactor*k.baseReqs, anomFloorRequests); float64(k.reqs) > lim {
			fire(kindRateSpike, fmt.Sprintf("%d requests this minute; baseline %.1f per minute", k.reqs, k.baseReqs))
		}
		if lim := max(d.cfg.SpikeFactor*k.baseTokens, anomFloorTokens); float64(k.tokens) > lim {
			fire(kindTokenSpike, fmt.Sprintf("%d tokens this minute; baseline %.0f per minute", k.tokens, k.baseTokens))
		}
	}

	if addr := clientip.Group(o.IP); addr.IsValid() {
		if _, seen := k.ips[addr]; !seen {
			switch {
			case !warm:
				k.warmIPs++
			case d.cfg.NewIP && len(k.ips) > 0 && k.warmIPs < anomRoamingIPs:
				fire(kindNewIP, fmt.Sprintf("first request from %s (%d addresses known)", o.IP, len(k.ips)))
			}
			if len(k.ips) >= anomMaxIPs {
				k.forgetOldestIP()
			}
		}
		k.ips[addr] = atN
	}

	u := at.UTC()
	hod := u.Hour()
	how := int(u.Weekday())*24 + hod
	if k.weekHour[how/64]&(1<<(how%64)) == 0 {
		if warm && d.cfg.OffHours && (atN-k.first >= int64(anomWeek) || k.dayHour&(1<<hod) == 0) {
			fire(kindOffHours, fmt.Sprintf("first use on %s at %02d:00 UTC", u.Weekday(), hod))
		}
		k.weekHour[how/64] |= 1 << (how % 64)
		k.dayHour |= 1 << hod
	}
	return alerts
}

// roll closes the current minute: a minute that saw requests is folded into
// the baseline; idle minutes are skipped.
func (k *anomKey) roll(minute int64) {
	if k.reqs > 0 {
		if k.minutes == 0 {
			k.baseReqs, k.baseTokens = float64(k.reqs), float64(k.tokens)
		} else {
			k.baseReqs += anomAlpha * (float64(k.reqs) - k.baseReqs)
			k.baseTokens += anomAlpha * (float64(k.tokens) - k.baseTokens)
		}
		if k.minutes < 1<<30 {
			k.minutes++
		}
	}
	if minute == k.minute+1 {
		k.authPrev = k.auth
	} else {
		k.authPrev = 0
	}
	k.minute, k.reqs, k.tokens, k.auth = minute, 0, 0, 0
}

func (k *anomKey) forgetOldestIP() {
	var (
		victim netip.Addr
		oldest int64
		found  bool
	)
	for a, t := range k.ips {
		if !found || t < oldest {
			victim, oldest, found = a, t, true
		}
	}
	delete(k.ips, victim)
}

// Sweep forgets keys unseen for 8 days (or Warmup, if longer); call it
// periodically. It returns how many keys it removed.
func (d *Detector) Sweep() int {
	now := d.now().UnixNano()
	return shardmap.Sweep(d.shards[:], func(k *anomKey) bool { return k.last+d.idle <= now })
}

// Len is the number of keys tracked.
func (d *Detector) Len() int {
	return shardmap.Len(d.shards[:])
}
