package plugin

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"paliprompt/core"
)

var (
	// nameRe matches micro service names, bucket names, stream and
	// consumer names: what every one of them accepts.
	nameRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	// tokenRe matches one literal subject token.
	tokenRe = regexp.MustCompile(`^[^\s.*>]+$`)
)

// problems adds the plugin's own kinds of checks to core.Problems (full
// keys: the plugin's tables have no common prefix).
type problems struct{ *core.Problems }

func (p problems) positive(key string, d Duration) {
	if d <= 0 {
		p.Add(key, "%s is not allowed: must be a positive duration like \"30s\"", d)
	}
}

func (p problems) name(key, value string) {
	if !nameRe.MatchString(value) {
		p.Add(key, "%q is not allowed: use letters, digits, '-' and '_' only", value)
	}
}

// subject checks a subject; wildcards says whether * and > may appear.
func (p problems) subject(key, value string, wildcards bool) {
	if msg := subjectProblem(value, wildcards); msg != "" {
		p.Add(key, "%q is not a valid subject: %s", value, msg)
	}
}

func subjectProblem(s string, wildcards bool) string {
	if s == "" {
		return "it is empty"
	}
	tokens := strings.Split(s, ".")
	for i, t := range tokens {
		switch {
		case wildcards && t == "*":
		case wildcards && t == ">" && i == len(tokens)-1:
		case !tokenRe.MatchString(t):
			if wildcards {
				return fmt.Sprintf("token %q: tokens are non-empty, without spaces; * and a final > are the only wildcards", t)
			}
			return fmt.Sprintf("token %q: tokens are non-empty, without spaces or wildcards", t)
		}
	}
	return ""
}

// Validate checks every field and reports all problems, each naming its
// key and what is allowed; the error is a core.ErrConfig.
func (c Config) Validate() error {
	p := problems{core.NewProblems("")}
	if strings.TrimSpace(c.DataDir) == "" {
		p.Add("data_dir", "must not be empty")
	}
	p.OneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	p.OneOf("log.format", c.Log.Format, "text", "json")
	c.NATS.validate(p)
	c.Service.validate(p)
	c.Events.validate(p, c.Queue.Size)
	c.Objects.validate(p)
	c.Limits.validate(p)
	c.Queue.validate(p)
	p.Merge(c.Model.Validate())
	p.Merge(c.Layout.Validate())
	p.Merge(c.SDXL.Validate())
	p.Merge(c.Verify.Validate())
	return p.Err()
}

func (n NATSConfig) validate(p problems) {
	for _, u := range strings.Split(n.URL, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		parsed, err := url.Parse(u)
		if err != nil || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, parsed.Scheme) || parsed.Host == "" {
			p.Add("nats.url", "%q is not a NATS URL: use nats://host:port (or tls://, ws://, wss://); empty starts the embedded server", u)
		}
	}
	methods := 0
	for _, set := range []bool{n.User != "", n.Token != "", n.NkeySeed != "", n.Creds != ""} {
		if set {
			methods++
		}
	}
	if methods > 1 {
		p.Add("nats", "set only one of user/password, token, nkey_seed and creds")
	}
	if n.Password != "" && n.User == "" {
		p.Add("nats.password", "is set but nats.user is empty")
	}
	if (n.TLSCert == "") != (n.TLSKey == "") {
		p.Add("nats.tls_cert", "nats.tls_cert and nats.tls_key go together: set both or neither")
	}
	p.subject("nats.inbox_prefix", n.InboxPrefix, false)
	p.positive("nats.reconnect_wait", n.ReconnectWait)
	if n.ReconnectMaxWait < n.ReconnectWait {
		p.Add("nats.reconnect_max_wait", "%s is shorter than nats.reconnect_wait (%s)", n.ReconnectMaxWait, n.ReconnectWait)
	}
	e := n.Embedded
	if strings.TrimSpace(e.Host) == "" {
		p.Add("nats.embedded.host", "must not be empty: use 127.0.0.1 for this machine only, 0.0.0.0 for all interfaces")
	}
	if e.Port != -1 && (e.Port < 1 || e.Port > 65535) {
		p.Add("nats.embedded.port", "%d is out of range: use 1..65535, or -1 for any free port", e.Port)
	}
	if e.MaxPayload < 1<<10 || e.MaxPayload > 64<<20 {
		p.Add("nats.embedded.max_payload", "%s is out of range: use 1KiB..64MiB", e.MaxPayload)
	}
	if e.MaxPending < e.MaxPayload {
		p.Add("nats.embedded.max_pending", "%s is less than nats.embedded.max_payload (%s): one message would not fit", e.MaxPending, e.MaxPayload)
	}
	p.positive("nats.embedded.write_deadline", e.WriteDeadline)
	e.validateSecurity(p, n.URL == "")
}

// validateSecurity checks the embedded server's credentials and TLS, and
// refuses to listen beyond loopback without authentication.
func (e EmbeddedConfig) validateSecurity(p problems, used bool) {
	seen := map[string]bool{}
	for _, u := range e.Users {
		name, password, ok := strings.Cut(u, ":")
		switch {
		case !ok || name == "" || password == "":
			p.Add("nats.embedded.users", "%q is not \"name:password\"", redactLogin(u))
		case seen[name]:
			p.Add("nats.embedded.users", "user %q is listed twice", name)
		}
		seen[name] = true
	}
	for _, k := range e.Nkeys {
		if !nkeys.IsValidPublicUserKey(k) {
			p.Add("nats.embedded.nkeys", "%q is not a public user nkey (\"U\" and 55 more characters; `nk -gen user -pubout` makes one)", k)
		}
	}
	if (e.TLSCert == "") != (e.TLSKey == "") {
		p.Add("nats.embedded.tls_cert", "nats.embedded.tls_cert and nats.embedded.tls_key go together: set both or neither")
	}
	if e.TLSCA != "" && e.TLSCert == "" {
		p.Add("nats.embedded.tls_ca", "verifies client certificates, which needs TLS: set nats.embedded.tls_cert and tls_key too")
	}
	if used && !isLoopback(e.Host) && !e.authenticates() && !e.AllowUnauthenticated {
		p.Add("nats.embedded.host", "%q is reachable from other machines, and no authentication is configured: anyone who reaches it could publish references, read every result and delete the streams and buckets. "+
			"Set nats.embedded.users (\"name:password\"), nats.embedded.token or nats.embedded.nkeys, with nats.embedded.tls_cert and tls_key so that they do not cross the network in clear; "+
			"or use host = \"127.0.0.1\"; or set nats.embedded.allow_unauthenticated = true to accept the risk", e.Host)
	}
}

// isLoopback: the host is this machine only (a loopback address or
// "localhost"); names and wildcard addresses (0.0.0.0, ::) are not.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// redactLogin hides the password of a "name:password" entry.
func redactLogin(u string) string {
	if name, _, ok := strings.Cut(u, ":"); ok {
		return name + ":***"
	}
	return u
}

func (s ServiceConfig) validate(p problems) {
	p.name("service.name", s.Name)
	p.subject("service.subject_prefix", s.SubjectPrefix, false)
	p.subject("service.queue_group", s.QueueGroup, false)
}

func (e EventsConfig) validate(p problems, queueSize int) {
	p.name("events.stream", e.Stream)
	p.name("events.consumer", e.Consumer)
	p.name("events.results_stream", e.ResultsStream)
	if e.Stream == e.ResultsStream {
		p.Add("events.results_stream", "must differ from events.stream (%q): the references stream is a work queue", e.Stream)
	}
	if len(e.Subjects) == 0 {
		p.Add("events.subjects", "must list at least one subject, like \"aiviz.reference.>\"")
	}
	for _, s := range e.Subjects {
		p.subject("events.subjects", s, true)
	}
	for _, g := range e.GeneratedSubjects {
		p.subject("events.generated_subjects", g, true)
		for _, s := range e.Subjects {
			if server.SubjectsCollide(g, s) {
				p.Add("events.generated_subjects", "%q overlaps events.subjects %q: a message must be either a reference or a generated image", g, s)
			}
		}
	}
	p.subject("events.ready_subject", e.ReadySubject, false)
	p.subject("events.failed_subject", e.FailedSubject, false)
	p.subject("events.verified_subject", e.VerifiedSubject, false)
	if e.ReadySubject == e.FailedSubject {
		p.Add("events.failed_subject", "must differ from events.ready_subject")
	}
	if e.VerifiedSubject == e.ReadySubject || e.VerifiedSubject == e.FailedSubject {
		p.Add("events.verified_subject", "must differ from events.ready_subject and events.failed_subject")
	}
	if e.AckWait < Duration(time.Second) {
		p.Add("events.ack_wait", "%s is too short: use at least 1s", e.AckWait)
	}
	if e.MaxDeliver != -1 && e.MaxDeliver < 1 {
		p.Add("events.max_deliver", "%d is not allowed: use 1 or more, or -1 for no limit", e.MaxDeliver)
	}
	if e.NakDelay < 0 {
		p.Add("events.nak_delay", "%s is negative", e.NakDelay)
	}
	p.AtLeast("events.concurrency", e.Concurrency, 1)
	if e.Concurrency > queueSize && queueSize >= 1 {
		p.Add("events.concurrency", "%d is more than queue.size (%d): the event bus shares that queue", e.Concurrency, queueSize)
	}
	p.positive("events.duplicate_window", e.DuplicateWindow)
	if e.DuplicateWindow > 0 && e.DuplicateWindow < 2*e.AckWait {
		// A reference whose ack was lost comes back after ack_wait; its
		// result must still be in the window to be stored once.
		p.Add("events.duplicate_window", "%s is shorter than twice events.ack_wait (%s): a redelivered reference could store a second result", e.DuplicateWindow, e.AckWait)
	}
	if e.ResultsMaxAge < 0 {
		p.Add("events.results_max_age", "%s is negative: use 0 to keep results forever", e.ResultsMaxAge)
	}
}

func (o ObjectsConfig) validate(p problems) {
	p.name("objects.images_bucket", o.ImagesBucket)
	p.name("objects.results_bucket", o.ResultsBucket)
	p.name("objects.plans_bucket", o.PlansBucket)
	if o.PlansTTL < 0 {
		p.Add("objects.plans_ttl", "%s is negative: use 0 to keep plans forever", o.PlansTTL)
	}
	if o.InlineMaskBytes < 0 {
		p.Add("objects.inline_mask_bytes", "%d is negative", o.InlineMaskBytes)
	}
	if o.ResultsTTL < 0 {
		p.Add("objects.results_ttl", "%s is negative: use 0 to keep masks forever", o.ResultsTTL)
	}
}

func (l LimitsConfig) validate(p problems) {
	if l.MaxImageBytes < 1<<10 {
		p.Add("limits.max_image_bytes", "%s is too small: use at least 1KiB", l.MaxImageBytes)
	}
	if !(l.MaxMegapixels > 0 && l.MaxMegapixels <= 1000) {
		p.Add("limits.max_megapixels", "%g is out of range: use more than 0 and at most 1000", l.MaxMegapixels)
	}
	p.AtLeast("limits.max_objects", l.MaxObjects, 1)
	if l.MaxTextBytes < 64 {
		p.Add("limits.max_text_bytes", "%s is too small: use at least 64B", l.MaxTextBytes)
	}
	p.AtLeast("limits.max_place_entries", l.MaxPlaceEntries, 1)
	// A request's own nesting: the object, "sdxl" or "place", a box.
	p.AtLeast("limits.max_json_depth", l.MaxJSONDepth, 3)
	if l.MaxHeaderBytes < 1<<10 {
		p.Add("limits.max_header_bytes", "%s is too small: use at least 1KiB", l.MaxHeaderBytes)
	}
}

func (q QueueConfig) validate(p problems) {
	p.AtLeast("queue.size", q.Size, 1)
	p.positive("queue.timeout", q.Timeout)
	if q.MaxTimeout < q.Timeout {
		p.Add("queue.max_timeout", "%s is shorter than queue.timeout (%s)", q.MaxTimeout, q.Timeout)
	}
	if q.ShutdownGrace < 0 {
		p.Add("queue.shutdown_grace", "%s is negative", q.ShutdownGrace)
	}
}
