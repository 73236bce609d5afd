package plugin

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Permissions are the NATS permissions paliprompt needs with a
// configuration: what it publishes, what it subscribes to, and how long
// after a request it may still answer it. examples/nats/ holds them as
// nats-server configuration and nats CLI commands, and a test checks that
// those are these.
type Permissions struct {
	Publish []string
	// Subscribe entries may carry a queue group after a space
	// ("paliprompt.v1.* paliprompt"): the subscription is allowed in that
	// queue group only.
	Subscribe []string
	// ResponsesExpire is how long after a request its reply may be sent
	// (nats-server's allow_responses), one reply per request: a request
	// may run for queue.max_timeout, and waits in the queue before that.
	ResponsesExpire time.Duration
}

// NeededPermissions lists the permissions for cfg. With create, paliprompt
// may create the streams, the consumer and the Object Store buckets
// itself; without, an operator created them ahead of time
// (examples/nats/setup.sh) and paliprompt only uses them.
func NeededPermissions(cfg Config, create bool) Permissions {
	svc, ev, obj := cfg.Service, cfg.Events, cfg.Objects
	p := Permissions{
		Subscribe: []string{
			// The endpoints, in the queue group only.
			svc.SubjectPrefix + ".* " + svc.QueueGroup,
			// micro's discovery: $SRV.PING, $SRV.PING.<name>, $SRV.PING.<name>.<id>.
			"$SRV.*", "$SRV.*." + svc.Name, "$SRV.*." + svc.Name + ".*",
			// Replies to paliprompt's own requests (JetStream API, publish
			// acks, fetched references, object chunks).
			cfg.NATS.InboxPrefix + ".>",
		},
		// A request may wait queue.max_timeout and is answered after; the
		// extra minute covers decoding and encoding around it.
		ResponsesExpire: time.Duration(cfg.Queue.MaxTimeout) + time.Minute,
	}
	// `paliprompt check` asks the running instances what they were refused.
	p.Publish = append(p.Publish, "$SRV.STATS."+svc.Name)
	api := "$JS.API."
	streams := []string{objectStream(obj.ImagesBucket), objectStream(obj.ResultsBucket)}
	if ev.Enabled {
		streams = append([]string{ev.Stream, ev.ResultsStream}, streams...)
	}
	for _, s := range streams {
		p.Publish = append(p.Publish, api+"STREAM.INFO."+s)
	}
	// Object Store. Images: the object's info (a direct get of its meta
	// message), then its chunks through an ordered consumer, deleted after.
	// Results: the info of an object of the same name, its chunks and
	// meta, and a purge of the chunks it replaces. (A bucket whose stream
	// does not allow direct gets needs STREAM.MSG.GET.<stream> instead of
	// DIRECT.GET; nats.go and the nats CLI create buckets that allow them.)
	images, results := objectStream(obj.ImagesBucket), objectStream(obj.ResultsBucket)
	p.Publish = append(p.Publish,
		api+"DIRECT.GET."+images+".>",
		api+"CONSUMER.CREATE."+images+".>",
		api+"CONSUMER.DELETE."+images+".>",
		api+"DIRECT.GET."+results+".>",
		"$O."+obj.ResultsBucket+".>",
		api+"STREAM.PURGE."+results,
		// verify reads the region masks of a plan sent inline from there.
		api+"CONSUMER.CREATE."+results+".>",
		api+"CONSUMER.DELETE."+results+".>",
	)
	if obj.KeepPlans {
		// Plans: put (info, chunks and meta, purge of the replaced
		// chunks) and read back (info, then chunks) by verify.
		plans := objectStream(obj.PlansBucket)
		p.Publish = append(p.Publish,
			api+"STREAM.INFO."+plans,
			api+"DIRECT.GET."+plans+".>",
			"$O."+obj.PlansBucket+".>",
			api+"STREAM.PURGE."+plans,
			api+"CONSUMER.CREATE."+plans+".>",
			api+"CONSUMER.DELETE."+plans+".>",
		)
		streams = append(streams, plans)
	}
	if ev.Enabled {
		p.Publish = append(p.Publish,
			api+"CONSUMER.INFO."+ev.Stream+"."+ev.Consumer,
			api+"CONSUMER.MSG.NEXT."+ev.Stream+"."+ev.Consumer,
			// ack, nak, in progress, term of fetched references: the
			// replies allowed as responses are one per message, and long
			// work sends "in progress" before its ack.
			"$JS.ACK."+ev.Stream+"."+ev.Consumer+".>",
		)
		p.Publish = append(p.Publish, resultSubjects(ev)...)
	}
	if create {
		for _, s := range streams {
			p.Publish = append(p.Publish, api+"STREAM.CREATE."+s)
		}
		if ev.Enabled {
			p.Publish = append(p.Publish, api+"CONSUMER.CREATE."+ev.Stream+"."+ev.Consumer)
		}
	}
	slices.Sort(p.Publish)
	p.Publish = slices.Compact(p.Publish)
	return p
}

// objectStream is the stream behind an Object Store bucket.
func objectStream(bucket string) string { return "OBJ_" + bucket }

// server is p as a nats-server user's permissions.
func (p Permissions) server() *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: slices.Clone(p.Publish)},
		Subscribe: &server.SubjectPermission{Allow: slices.Clone(p.Subscribe)},
		Response:  &server.ResponsePermission{MaxMsgs: 1, Expires: p.ResponsesExpire},
	}
}

// refusals are the permission violations the server reported on
// paliprompt's connection. Each is logged once, kept for the service
// stats and `paliprompt check`, and passed to the current watcher: while
// starting up, the first one stops the start with an error that names it
// instead of a JetStream request timing out.
type refusals struct {
	mu      sync.Mutex
	seen    []string
	count   int64
	watcher func(error)
}

// maxRefusalsKept bounds the list of distinct refusals kept.
const maxRefusalsKept = 32

// add records a refusal; it reports whether it is new.
func (r *refusals) add(err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count++
	desc := err.Error()
	if slices.Contains(r.seen, desc) {
		return false
	}
	if len(r.seen) < maxRefusalsKept {
		r.seen = append(r.seen, desc)
	}
	return true
}

// notify passes a refusal to the watcher, if any (after add has logged
// it: the start-up error then follows the log line).
func (r *refusals) notify(err error) {
	r.mu.Lock()
	watcher := r.watcher
	r.mu.Unlock()
	if watcher != nil {
		watcher(err)
	}
}

// watch calls f with every refusal until the returned stop is called.
func (r *refusals) watch(f func(error)) (stop func()) {
	r.mu.Lock()
	r.watcher = f
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		r.watcher = nil
		r.mu.Unlock()
	}
}

// list returns the distinct refusals so far and how many there were.
func (r *refusals) list() ([]string, int64) {
	if r == nil {
		return nil, 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen), r.count
}

// refusedError is the start-up error for a refused permission.
func refusedError(err error) error {
	return fmt.Errorf("the NATS server refused a permission paliprompt needs (%w); "+
		"grant it to paliprompt's user: examples/nats/ lists every permission, or see `paliprompt check`", err)
}

// WritePermissions writes the permissions for cfg in the forms a NATS
// operator uses: nats-server configuration variables (the users of
// examples/nats/paliprompt.conf take them) and nsc commands (operator mode:
// a user JWT, and the .creds file paliprompt logs in with).
func WritePermissions(w io.Writer, cfg Config) {
	uses, creates := NeededPermissions(cfg, false), NeededPermissions(cfg, true)
	fmt.Fprintf(w, "# nats-server configuration: paliprompt with the streams, consumer and buckets\n# created ahead of time (examples/nats/setup.sh), and paliprompt creating them.\n")
	uses.writeConf(w, "PALIPROMPT_USES")
	creates.writeConf(w, "PALIPROMPT_CREATES")
	fmt.Fprintf(w, "\n# Operator mode (nsc): a user that creates what it needs; drop the\n# CREATE subjects when an operator made them.\n")
	creates.writeNsc(w, "paliprompt")
}

func (p Permissions) writeConf(w io.Writer, name string) {
	fmt.Fprintf(w, "%s = {\n  publish: [\n", name)
	for _, s := range p.Publish {
		fmt.Fprintf(w, "    %q\n", s)
	}
	fmt.Fprintf(w, "  ]\n  subscribe: [\n")
	for _, s := range p.Subscribe {
		fmt.Fprintf(w, "    %q\n", s)
	}
	fmt.Fprintf(w, "  ]\n  allow_responses: { max: 1, expires: %q }\n}\n", shortDuration(p.ResponsesExpire))
}

func (p Permissions) writeNsc(w io.Writer, user string) {
	fmt.Fprintf(w, "nsc add user --name %s \\\n", user)
	for _, s := range p.Publish {
		fmt.Fprintf(w, "  --allow-pub '%s' \\\n", s)
	}
	for _, s := range p.Subscribe {
		fmt.Fprintf(w, "  --allow-sub '%s' \\\n", s)
	}
	fmt.Fprintf(w, "  --allow-pub-response=1 --response-ttl %s\n", shortDuration(p.ResponsesExpire))
	fmt.Fprintf(w, "nsc generate creds --name %s > %s.creds   # then [nats] creds = \"%s.creds\"\n", user, user, user)
}

// shortDuration is d as Go writes it, without zero units ("11m", not
// "11m0s").
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
