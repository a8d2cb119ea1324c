package faults

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
)

// TDS faults (docs/tds-faults.md) answer in the server's place where the
// proxy sees TDS in plaintext: a NOT_SUP session, or a login-only
// (ENCRYPT_OFF) session after its LOGIN7 (MS-TDS §2.2.6.5: only LOGIN7 is
// encrypted). They are rules with `action: NAME` like the generic stages,
// but each is one value of the table tdsFaults: its options (bound by name
// into tdsOptions through `opt` tags), which of them it takes, and what it
// attaches to a connection when LOGIN7 passes (tds_stage.go).

// TDS fault names (RuleSpec.Action).
const (
	TDSError     = "tds_error"
	TDSRedirect  = "redirect"
	TDSCutResult = "cut_result"
	TDSAttention = "attention"
	TDSIdleKill  = "idle_kill"
	TDSFailover  = "failover"
)

// SkipLoginHidden is the skip recorded when a rule matches on LOGIN7
// fields and LOGIN7 travelled encrypted.
const SkipLoginHidden = "LOGIN7 not visible (use bridge mode)"

// tdsOption is one option of the TDS faults.
type tdsOption struct {
	Name, Help string
}

// tdsOptionTable lists every TDS fault option once; a fault names those
// it takes (tdsFault.Options).
var tdsOptionTable = []tdsOption{
	{"at", "login (replace the login response) or query (replace the reply to a matching SQL batch or RPC); default login"},
	{"number", "the error number; " + "known numbers get the real server's message, class and state"},
	{"message", "the error text (required for a number tds_error does not know)"},
	{"class", "the error's class (severity), 1..25; default the server's, or 16"},
	{"state", "the error's state, 0..255; default the server's, or 1"},
	{"query", "regular expression on a SQL batch's text or an RPC's procedure name (RE2 syntax)"},
	{"times", "act on the first N matches of the rule, then pass (0: always)"},
	{"app", "regular expression on LOGIN7's application name"},
	{"host", "regular expression on LOGIN7's client host name"},
	{"user", "regular expression on LOGIN7's user name"},
	{"database", "regular expression on LOGIN7's database"},
	{"to", "where the client must reconnect, host:port"},
	{"rows", "close after this many rows of the result"},
	{"bytes", "close after this many bytes of the result"},
	{"mode", "drop (the server never sees the ATTENTION) or delay (the server's DONE(attention) is held for delay)"},
	{"delay", "how long to hold the DONE(attention), e.g. 10s"},
	{"idle", "reset the connection once no byte has passed either way for this long, e.g. 30m"},
	{"duration", "how long logins are refused after the connections are reset, e.g. 30s"},
	{"after", "when the (first) failover starts, counted from when the rule was set (default at once)"},
	{"every", "repeat the failover this often (default once)"},
	{"in_transaction", "true: only while a transaction is open (ENVCHANGE begin/commit/rollback, MS-TDS §2.2.7.9)"},
}

// loginOptions are the LOGIN7 matches every TDS fault takes.
var loginOptions = []string{"app", "host", "user", "database", "times"}

// tdsFault is one TDS fault kind of the table.
type tdsFault struct {
	Name, Summary string
	// Options are the option names it takes.
	Options []string
	// check validates the bound options of one rule.
	check func(o *tdsOptions) error
}

// tdsFaults is the table, in the documented order.
var tdsFaults = []tdsFault{
	{Name: TDSError, Summary: "answers a login or a matching batch/RPC with a server error (ERROR + DONE(error)) instead of the server's reply",
		Options: append([]string{"at", "number", "message", "class", "state", "query"}, loginOptions...), check: checkTDSError},
	{Name: TDSRedirect, Summary: "adds a ROUTING ENVCHANGE to the login response (Azure SQL gateway in Redirect mode): the client reconnects to another address",
		Options: append([]string{"to"}, loginOptions...), check: checkRedirect},
	{Name: TDSCutResult, Summary: "closes the connection after N rows or N bytes of the result of a matching batch/RPC (a connection lost mid-result)",
		Options: append([]string{"query", "rows", "bytes"}, loginOptions...), check: checkCutResult},
	{Name: TDSAttention, Summary: "on a client's cancel (ATTENTION): drop it, or hold the server's DONE(attention) acknowledgement",
		Options: append([]string{"mode", "delay"}, loginOptions...), check: checkAttention},
	{Name: TDSIdleKill, Summary: "resets a connection idle for a duration (the Azure gateway's idle reset, NAT timeouts), optionally only inside a transaction",
		Options: append([]string{"idle", "in_transaction"}, loginOptions...), check: checkIdleKill},
	{Name: TDSFailover, Summary: "an instance failing over: at the start, connections open under the rule are reset; for the duration logins get 40613 (or number)",
		Options: []string{"duration", "after", "every", "number", "message"}, check: checkFailover},
}

func tdsFaultByName(name string) (*tdsFault, bool) {
	for i := range tdsFaults {
		if strings.EqualFold(tdsFaults[i].Name, name) {
			return &tdsFaults[i], true
		}
	}
	return nil, false
}

// TDSFaultInfo describes a TDS fault for help texts and docs.
type TDSFaultInfo struct {
	Name, Summary string
	// Options are the option names with their help.
	Options []Option
}

// TDSFaults describes every TDS fault, in the documented order.
func TDSFaults() []TDSFaultInfo {
	out := make([]TDSFaultInfo, len(tdsFaults))
	for i, f := range tdsFaults {
		out[i] = TDSFaultInfo{Name: f.Name, Summary: f.Summary}
		for _, n := range f.Options {
			j := slices.IndexFunc(tdsOptionTable, func(o tdsOption) bool { return o.Name == n })
			out[i].Options = append(out[i].Options, Option{Name: n, Help: tdsOptionTable[j].Help})
		}
	}
	return out
}

// IsTDSFault reports whether action names a TDS fault.
func IsTDSFault(action string) bool { _, ok := tdsFaultByName(action); return ok }

// tdsOptions are a TDS fault rule's options, bound by name (opt tags).
type tdsOptions struct {
	At       string        `opt:"at"`
	Number   int64         `opt:"number"`
	Message  string        `opt:"message"`
	Class    int64         `opt:"class"`
	State    int64         `opt:"state"`
	Query    string        `opt:"query"`
	Times    int64         `opt:"times"`
	App      string        `opt:"app"`
	Host     string        `opt:"host"`
	User     string        `opt:"user"`
	Database string        `opt:"database"`
	To       string        `opt:"to"`
	Rows     int64         `opt:"rows"`
	Bytes    int64         `opt:"bytes"`
	Mode     string        `opt:"mode"`
	Delay    time.Duration `opt:"delay"`
	Idle     time.Duration `opt:"idle"`
	Duration time.Duration `opt:"duration"`
	After    time.Duration `opt:"after"`
	Every    time.Duration `opt:"every"`
	InTx     string        `opt:"in_transaction"`

	given map[string]bool
	// compiled
	queryRE *regexp.Regexp
	loginRE map[string]*regexp.Regexp // app, host, user, database
	known   serverError               // the error sent (tds_error)
	routing tds.Routing               // redirect
	onlyTx  bool                      // idle_kill in_transaction
}

// bindTDSOptions binds raw options by name into a fresh tdsOptions,
// refusing options the fault does not take; errors name options.KEY.
func bindTDSOptions(f *tdsFault, raw OptionValues) (*tdsOptions, error) {
	o := &tdsOptions{given: map[string]bool{}, loginRE: map[string]*regexp.Regexp{}}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := strings.TrimSpace(raw[k])
		key := "options." + k
		if !slices.Contains(f.Options, k) {
			return nil, keyed(key, "%s takes %s", f.Name, strings.Join(f.Options, ", "))
		}
		fv, err := optField(o, k)
		if err != nil {
			return nil, &keyError{key: key, err: err}
		}
		switch fv.Kind() {
		case reflect.String:
			fv.SetString(v)
		case reflect.Int64:
			if fv.Type() == reflect.TypeFor[time.Duration]() {
				d, err := time.ParseDuration(v)
				if err != nil || d < 0 {
					return nil, keyed(key, "%q is not a duration such as 10s or 250ms", v)
				}
				fv.SetInt(int64(d))
				break
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, keyed(key, "%q is not a whole number", v)
			}
			fv.SetInt(n)
		}
		o.given[k] = true
	}
	if o.Times < 0 {
		return nil, keyed("options.times", "%d: must be 0 (always) or more", o.Times)
	}
	for _, k := range []string{"app", "host", "user", "database"} {
		fv, _ := optField(o, k)
		if s := fv.String(); s != "" {
			re, err := regexp.Compile(s)
			if err != nil {
				return nil, keyed("options."+k, "invalid regular expression: %v", err)
			}
			o.loginRE[k] = re
		}
	}
	if o.Query != "" {
		re, err := regexp.Compile(o.Query)
		if err != nil {
			return nil, keyed("options.query", "invalid regular expression: %v", err)
		}
		o.queryRE = re
	}
	if err := f.check(o); err != nil {
		return nil, err
	}
	return o, nil
}

func checkTDSError(o *tdsOptions) error {
	switch strings.ToLower(o.At) {
	case "", "login":
		o.At = "login"
		if o.given["query"] {
			return keyed("options.query", "applies to at: query, not at: login")
		}
	case "query":
		o.At = "query"
	default:
		return keyed("options.at", "%q is not login or query", o.At)
	}
	if !o.given["number"] {
		return keyed("options.number", "is required: one of %s, or any other number with a message", knownNumbersText())
	}
	if o.Number == -2 {
		return keyed("options.number", "-2 is a client-side timeout, never sent by a server")
	}
	if o.Number < 1 || o.Number > 1<<31-1 {
		return keyed("options.number", "%d is not a server error number", o.Number)
	}
	e, ok := serverErrorByNumber(int32(o.Number))
	if !ok {
		if o.Message == "" {
			return keyed("options.message", "is required for error %d (known numbers: %s)", o.Number, knownNumbersText())
		}
		e = serverError{Number: int32(o.Number), Class: 16, State: 1}
	}
	if o.Message != "" {
		e.Message = o.Message
	}
	if o.given["class"] {
		if o.Class < 1 || o.Class > 25 {
			return keyed("options.class", "%d is not between 1 and 25", o.Class)
		}
		e.Class = uint8(o.Class)
	}
	if o.given["state"] {
		if o.State < 0 || o.State > 255 {
			return keyed("options.state", "%d is not between 0 and 255", o.State)
		}
		e.State = uint8(o.State)
	}
	o.known = e
	return nil
}

func checkRedirect(o *tdsOptions) error {
	host, port, err := net.SplitHostPort(o.To)
	if o.To == "" {
		return keyed("options.to", "is required: host:port of the listener the client must reconnect to")
	}
	n, perr := strconv.ParseUint(port, 10, 16)
	if err != nil || perr != nil || host == "" || n == 0 {
		return keyed("options.to", "%q is not host:port", o.To)
	}
	o.routing = tds.Routing{Port: uint16(n), Server: host}
	return nil
}

func checkCutResult(o *tdsOptions) error {
	if o.Rows < 0 || o.Bytes < 0 {
		return keyed("options.rows", "rows and bytes must not be negative")
	}
	if (o.Rows > 0) == (o.Bytes > 0) {
		return keyed("options.rows", "set one of rows and bytes (a positive count)")
	}
	return nil
}

func checkAttention(o *tdsOptions) error {
	switch strings.ToLower(o.Mode) {
	case "", "drop":
		o.Mode = "drop"
		if o.given["delay"] {
			return keyed("options.delay", "applies to mode: delay")
		}
	case "delay":
		o.Mode = "delay"
		if o.Delay <= 0 {
			return keyed("options.delay", "is required with mode: delay (e.g. 10s)")
		}
	default:
		return keyed("options.mode", "%q is not drop or delay", o.Mode)
	}
	return nil
}

func checkFailover(o *tdsOptions) error {
	if o.Duration <= 0 {
		return keyed("options.duration", "is required: how long logins are refused, e.g. 30s")
	}
	if o.Every != 0 && o.Every <= o.Duration {
		return keyed("options.every", "%v must be longer than the duration (%v)", o.Every, o.Duration)
	}
	if !o.given["number"] {
		o.Number, o.given["number"] = 40613, true
	}
	o.At = "login"
	return checkTDSError(o)
}

func checkIdleKill(o *tdsOptions) error {
	if o.Idle <= 0 {
		return keyed("options.idle", "is required: how long a connection may stay idle, e.g. 30m")
	}
	if o.InTx != "" {
		b, err := strconv.ParseBool(o.InTx)
		if err != nil {
			return keyed("options.in_transaction", "%q is not true or false", o.InTx)
		}
		o.onlyTx = b
	}
	return nil
}

// tdsRule is a compiled TDS fault rule.
type tdsRule struct {
	fault *tdsFault
	opts  *tdsOptions
	// hits counts the injections since the rule was set (options.times).
	hits *atomic.Int64
}

// compileTDS compiles a rule whose action is a TDS fault.
func (r *rule) compileTDS(spec RuleSpec) error {
	f, _ := tdsFaultByName(spec.Action)
	if spec.Direction != "" || spec.Phase != "" {
		return errors.New("direction, phase: not for TDS faults, which act on TDS messages after LOGIN7")
	}
	o, err := bindTDSOptions(f, spec.Options)
	if err != nil {
		return err
	}
	if f.Name == TDSCutResult && !strings.EqualFold(spec.Close, "") && !strings.EqualFold(spec.Close, "rst") && !strings.EqualFold(spec.Close, "fin") {
		return keyed("close", "cut_result closes with rst or fin")
	}
	r.tds = &tdsRule{fault: f, opts: o, hits: new(atomic.Int64)}
	r.phase = proxy.PhaseLogin7
	return nil
}

// take counts one injection; false once options.times are used up.
func (t *tdsRule) take() (n int64, ok bool) {
	for {
		cur := t.hits.Load()
		if t.opts.Times > 0 && cur >= t.opts.Times {
			return cur, false
		}
		if t.hits.CompareAndSwap(cur, cur+1) {
			return cur + 1, true
		}
	}
}

// timesText is " (2 of 3)" for a rule with times, "" without.
func (t *tdsRule) timesText(n int64) string {
	if t.opts.Times == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d of %d)", n, t.opts.Times)
}

// loginMatch checks the LOGIN7 options against the record; skip is set
// when they cannot be evaluated.
func (t *tdsRule) loginMatch(rec *proxy.Record) (ok bool, skip string) {
	if len(t.opts.loginRE) == 0 {
		return true, ""
	}
	if rec.Login == nil || !rec.Login.Visible {
		return false, SkipLoginHidden
	}
	l := rec.Login
	for k, v := range map[string]string{"app": l.App, "host": l.Host, "user": l.User, "database": l.Database} {
		if re := t.opts.loginRE[k]; re != nil && !re.MatchString(v) {
			return false, ""
		}
	}
	return true, ""
}

// plaintextAfterLogin reports whether the proxy sees TDS in plaintext
// once LOGIN7 is sent: no TLS, TLS for the login only, or any session in
// bridge mode.
func plaintextAfterLogin(rec *proxy.Record) (bool, string) {
	if rec.Bridge != nil {
		// Bridge mode: the proxy relays the decrypted session through the
		// rule's stages whatever the encryption (docs/bridge.md).
		return true, ""
	}
	if rec.Protocol == proxy.ProtocolStrict {
		return false, "TDS 8.0 strict: the whole session is encrypted (use bridge mode)"
	}
	if rec.Prelogin == nil || rec.Prelogin.Scope == "" {
		// No PRELOGIN (a TDS 7.x LOGIN7 first) or an unknown reply: TDS
		// in plaintext is what follows if the login itself was.
		if rec.Login != nil && rec.Login.Visible {
			return true, ""
		}
		return false, "encryption negotiation not seen"
	}
	switch rec.Prelogin.Scope {
	case tds.ScopeNone.String(), tds.ScopeLoginOnly.String():
		return true, ""
	}
	return false, "the session is encrypted (use bridge mode)"
}

// decideTDS is a TDS rule's decision at a phase event: at LOGIN7 it
// attaches the fault's stages, or records why it cannot.
func (c *connDecider) decideTDS(cr *connRule, ev *proxy.Event, rec *proxy.Record) proxy.Verdict {
	t := cr.r.tds
	if t.fault.Name == TDSFailover {
		return c.decideFailover(cr, ev, rec)
	}
	if ev.Phase != proxy.PhaseLogin7 || cr.attached {
		return proxy.Verdict{}
	}
	cr.attached = true
	ok, why := t.loginMatch(rec)
	if why != "" {
		return proxy.Verdict{Action: proxy.ActionSkip, Detail: why}
	}
	if !ok {
		cr.out = true
		return proxy.Verdict{}
	}
	if ok, why := plaintextAfterLogin(rec); !ok {
		return proxy.Verdict{Action: proxy.ActionSkip, Detail: why}
	}
	return c.attachTDS(cr, rec)
}

// LoginErrorInjected reports the error a tds_error rule answered the
// connection's login with, and the rule's name.
func LoginErrorInjected(rec *proxy.Record) (number int32, rule string, ok bool) {
	for _, f := range rec.Faults {
		if f.Action != TDSError {
			continue
		}
		if _, err := fmt.Sscanf(f.Detail, "login answered with error %d", &number); err == nil {
			return number, f.Rule, true
		}
	}
	return 0, "", false
}
