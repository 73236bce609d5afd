package plugin

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"paliprompt/core"
	"paliprompt/verify"

	"github.com/BurntSushi/toml"

	"paliprompt/grounding"
	"paliprompt/layouts"
	"paliprompt/sdxl"
)

// ErrConfig is wrapped by every configuration error: an unknown key, a
// value of the wrong type, a value out of range, a bad environment override.
var ErrConfig = errors.New("plugin: invalid config")

// Config is the whole of config.toml. DefaultConfig gives the defaults,
// which serve the embedded case: an embedded NATS server on 127.0.0.1:4222,
// no model (the text grounder only).
type Config struct {
	// DataDir holds state: the embedded server's JetStream store.
	DataDir string                `toml:"data_dir"`
	Log     LogConfig             `toml:"log"`
	NATS    NATSConfig            `toml:"nats"`
	Service ServiceConfig         `toml:"service"`
	Events  EventsConfig          `toml:"events"`
	Objects ObjectsConfig         `toml:"objects"`
	Limits  LimitsConfig          `toml:"limits"`
	Queue   QueueConfig           `toml:"queue"`
	Model   grounding.ModelConfig `toml:"model"`
	Layout  layouts.Config        `toml:"layout"`
	SDXL    sdxl.Config           `toml:"sdxl"`
	Verify  verify.Config         `toml:"verify"`
}

// LogConfig selects the slog handler.
type LogConfig struct {
	// Level is the lowest level logged: debug, info, warn or error.
	Level string `toml:"level"`
	// Format is text (logfmt-like) or json.
	Format string `toml:"format"`
}

// NATSConfig says which NATS server to use and how to authenticate.
type NATSConfig struct {
	// URL of an external server (comma-separated for a cluster). Empty:
	// start the embedded server.
	URL string `toml:"url"`
	// Name is the connection name the server shows in its monitoring.
	Name string `toml:"name"`
	// User and Password authenticate with a user name.
	User     string `toml:"user"`
	Password string `toml:"password"`
	// Token authenticates with a token.
	Token string `toml:"token"`
	// NkeySeed is a file holding an nkey user seed (SU...).
	NkeySeed string `toml:"nkey_seed"`
	// Creds is a .creds file (user JWT and nkey seed).
	Creds string `toml:"creds"`
	// TLSCA verifies the server; TLSCert and TLSKey are a client certificate.
	TLSCA   string `toml:"tls_ca"`
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// InboxPrefix starts the subjects of replies to paliprompt's own
	// requests, so that its user needs to read only <prefix>.> instead of
	// every client's _INBOX.>.
	InboxPrefix string `toml:"inbox_prefix"`
	// ReconnectWait is the first delay between reconnect attempts; it
	// doubles up to ReconnectMaxWait. Reconnection never gives up.
	ReconnectWait    Duration `toml:"reconnect_wait"`
	ReconnectMaxWait Duration `toml:"reconnect_max_wait"`
	// Embedded configures the embedded server (used when URL is empty).
	Embedded EmbeddedConfig `toml:"embedded"`
}

// withoutCredentials is n without the credentials and TLS files meant for
// an external server.
func (n NATSConfig) withoutCredentials() NATSConfig {
	n.User, n.Password, n.Token, n.NkeySeed, n.Creds = "", "", "", "", ""
	n.TLSCA, n.TLSCert, n.TLSKey = "", "", ""
	return n
}

// EmbeddedConfig configures the embedded NATS server.
type EmbeddedConfig struct {
	// Host is the address to listen on.
	Host string `toml:"host"`
	// Port to listen on; -1 picks a free port.
	Port int `toml:"port"`
	// MaxPayload is the largest message the server accepts.
	MaxPayload ByteSize `toml:"max_payload"`
	// MaxPending is how much the server buffers for a client that reads
	// slower than messages come (nats-server's max_pending); past it, or
	// past WriteDeadline, the client is dropped as a slow consumer and
	// what was buffered is lost. A flood of large requests is read by
	// paliprompt at its own pace: this is the burst it absorbs.
	MaxPending ByteSize `toml:"max_pending"`
	// WriteDeadline is how long one write to a client may block.
	WriteDeadline Duration `toml:"write_deadline"`
	// StoreDir is the JetStream store. Empty: <data_dir>/jetstream.
	StoreDir string `toml:"store_dir"`
	// Users are "name:password" logins for clients (the image app, the
	// nats CLI); a password may be a bcrypt hash ("$2a$...", as `nats
	// server passwd` makes it). Any of Users, Token and Nkeys turns
	// authentication on; paliprompt itself then connects with an nkey of
	// its own, made at start-up.
	Users []string `toml:"users"`
	// Token is a token clients may present instead.
	Token string `toml:"token"`
	// Nkeys are public user nkeys ("U...") whose seeds may connect.
	Nkeys []string `toml:"nkeys"`
	// TLSCert and TLSKey are the server's certificate and key (PEM):
	// clients must then connect with TLS.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// TLSCA verifies client certificates: set, every client must present
	// one signed by it.
	TLSCA string `toml:"tls_ca"`
	// AllowUnauthenticated lets the server listen on an address other than
	// loopback without authentication (refused otherwise).
	AllowUnauthenticated bool `toml:"allow_unauthenticated"`
}

// authenticates reports whether clients of the embedded server must log in.
func (e EmbeddedConfig) authenticates() bool {
	return len(e.Users) > 0 || e.Token != "" || len(e.Nkeys) > 0
}

// ServiceConfig names the micro service and its endpoints.
type ServiceConfig struct {
	// Name of the micro service (nats micro ls).
	Name string `toml:"name"`
	// SubjectPrefix is put before the endpoint names: <prefix>.generate.
	SubjectPrefix string `toml:"subject_prefix"`
	// QueueGroup shares requests between instances.
	QueueGroup string `toml:"queue_group"`
	// Description shown by nats micro info.
	Description string `toml:"description"`
}

// EventsConfig configures the JetStream event bus.
type EventsConfig struct {
	// Enabled turns the event bus consumer on.
	Enabled bool `toml:"enabled"`
	// Stream is the work-queue stream of references, created if absent.
	Stream string `toml:"stream"`
	// Subjects of Stream: references (generate, layout).
	Subjects []string `toml:"subjects"`
	// GeneratedSubjects of Stream: generated images to verify against
	// the plan of the reference with their id (or the plan they name).
	// Empty: no verify on the event bus.
	GeneratedSubjects []string `toml:"generated_subjects"`
	// Consumer is the durable pull consumer shared by all instances.
	Consumer string `toml:"consumer"`
	// ResultsStream stores result and failure events, created if absent.
	ResultsStream string `toml:"results_stream"`
	// ReadySubject and FailedSubject are prefixes: the reference id is
	// appended as the last token.
	ReadySubject  string `toml:"ready_subject"`
	FailedSubject string `toml:"failed_subject"`
	// VerifiedSubject is the prefix of verify results.
	VerifiedSubject string `toml:"verified_subject"`
	// AckWait is how long the server waits for an ack before redelivering;
	// long work sends InProgress every third of it.
	AckWait Duration `toml:"ack_wait"`
	// MaxDeliver is how often a reference is tried before it is given up
	// with a failure event (-1: forever).
	MaxDeliver int `toml:"max_deliver"`
	// NakDelay is the redelivery delay after a transient failure.
	NakDelay Duration `toml:"nak_delay"`
	// Concurrency is the number of references worked on at once.
	Concurrency int `toml:"concurrency"`
	// DuplicateWindow of ResultsStream: a result published again within it
	// (same Nats-Msg-Id) is stored once.
	DuplicateWindow Duration `toml:"duplicate_window"`
	// ResultsMaxAge is how long result events are kept.
	ResultsMaxAge Duration `toml:"results_max_age"`
}

// ObjectsConfig names the JetStream Object Store buckets.
type ObjectsConfig struct {
	// ImagesBucket holds images too large for one message (image_object).
	ImagesBucket string `toml:"images_bucket"`
	// ResultsBucket holds masks too large to inline in a reply.
	ResultsBucket string `toml:"results_bucket"`
	// InlineMaskBytes is the largest mask PNG put inline in a reply.
	InlineMaskBytes ByteSize `toml:"inline_mask_bytes"`
	// ResultsTTL is how long objects in ResultsBucket are kept.
	ResultsTTL Duration `toml:"results_ttl"`
	// KeepPlans keeps the plan of every generate and layout result in
	// PlansBucket, named by the result's id, for verify requests by id.
	KeepPlans bool `toml:"keep_plans"`
	// PlansBucket holds the kept plans.
	PlansBucket string `toml:"plans_bucket"`
	// PlansTTL is how long a plan is kept; "0s": forever.
	PlansTTL Duration `toml:"plans_ttl"`
}

// LimitsConfig bounds what a request may ask for.
type LimitsConfig struct {
	// MaxImageBytes is the largest encoded image (message body or object).
	MaxImageBytes ByteSize `toml:"max_image_bytes"`
	// MaxMegapixels is the largest image, checked from its header before
	// decoding.
	MaxMegapixels float64 `toml:"max_megapixels"`
	// MaxObjects is the most object names one request may list.
	MaxObjects int `toml:"max_objects"`
	// MaxTextBytes bounds each text of a request: PaliGemma output text,
	// the question, the SDXL positive and negative terms.
	MaxTextBytes ByteSize `toml:"max_text_bytes"`
	// MaxPlaceEntries is the most placement moves one request may list.
	MaxPlaceEntries int `toml:"max_place_entries"`
	// MaxJSONDepth is the deepest nesting of objects and arrays a JSON
	// request may have.
	MaxJSONDepth int `toml:"max_json_depth"`
	// MaxHeaderBytes bounds a request's headers, names and values together.
	MaxHeaderBytes ByteSize `toml:"max_header_bytes"`
}

// QueueConfig configures scheduling in front of the grounder.
type QueueConfig struct {
	// Size is the number of requests admitted at once (waiting or being
	// grounded); one more is refused with 503 at once.
	Size int `toml:"size"`
	// Timeout is the default deadline of a request (504 when exceeded).
	Timeout Duration `toml:"timeout"`
	// MaxTimeout caps the deadline a request may ask for.
	MaxTimeout Duration `toml:"max_timeout"`
	// ShutdownGrace is how long in-flight work may finish after SIGTERM.
	ShutdownGrace Duration `toml:"shutdown_grace"`
}

// DefaultConfig returns the defaults; config.toml lists the same values.
func DefaultConfig() Config {
	return Config{
		DataDir: "data",
		Log:     LogConfig{Level: "info", Format: "text"},
		NATS: NATSConfig{
			Name:             "paliprompt",
			InboxPrefix:      "_INBOX.paliprompt",
			ReconnectWait:    Duration(time.Second),
			ReconnectMaxWait: Duration(30 * time.Second),
			Embedded: EmbeddedConfig{
				Host:          "127.0.0.1",
				Port:          4222,
				MaxPayload:    8 << 20,
				MaxPending:    256 << 20,
				WriteDeadline: Duration(30 * time.Second),
				Users:         []string{},
				Nkeys:         []string{},
			},
		},
		Service: ServiceConfig{
			Name:          "paliprompt",
			SubjectPrefix: "paliprompt.v1",
			QueueGroup:    "paliprompt",
			Description:   "Reference image to SDXL regional prompts (PaliGemma 2 grounding)",
		},
		Events: EventsConfig{
			Enabled:           true,
			Stream:            "AIVIZ_REFERENCES",
			Subjects:          []string{"aiviz.reference.>"},
			GeneratedSubjects: []string{"aiviz.generated.>"},
			Consumer:          "paliprompt",
			ResultsStream:     "AIVIZ_PROMPTS",
			ReadySubject:      "aiviz.prompt.ready",
			FailedSubject:     "aiviz.prompt.failed",
			VerifiedSubject:   "aiviz.prompt.verified",
			AckWait:           Duration(60 * time.Second),
			MaxDeliver:        5,
			NakDelay:          Duration(10 * time.Second),
			Concurrency:       1,
			DuplicateWindow:   Duration(time.Hour),
			ResultsMaxAge:     Duration(7 * 24 * time.Hour),
		},
		Objects: ObjectsConfig{
			ImagesBucket:    "paliprompt-images",
			ResultsBucket:   "paliprompt-results",
			InlineMaskBytes: 256 << 10,
			ResultsTTL:      Duration(24 * time.Hour),
			KeepPlans:       true,
			PlansBucket:     "paliprompt-plans",
			PlansTTL:        Duration(24 * time.Hour),
		},
		Limits: LimitsConfig{
			MaxImageBytes:   32 << 20,
			MaxMegapixels:   50,
			MaxObjects:      16,
			MaxTextBytes:    64 << 10,
			MaxPlaceEntries: 32,
			MaxJSONDepth:    16,
			MaxHeaderBytes:  16 << 10,
		},
		Queue: QueueConfig{
			Size:          8,
			Timeout:       Duration(2 * time.Minute),
			MaxTimeout:    Duration(10 * time.Minute),
			ShutdownGrace: Duration(30 * time.Second),
		},
		Model:  defaultModel(),
		Layout: layouts.DefaultConfig(),
		SDXL:   sdxl.DefaultConfig(),
		Verify: verify.DefaultConfig(),
	}
}

// DemoModelDir is the bundled demo model, relative to the repository root.
const DemoModelDir = "models/demo-shapes"

// defaultModel is grounding's defaults with the bundled demo model, so that
// `paliprompt serve` from the repository root grounds images out of the box.
func defaultModel() grounding.ModelConfig {
	m := grounding.DefaultModelConfig()
	m.Dir = DemoModelDir
	return m
}

// LoadConfig reads a config file over the defaults, applies environment
// overrides (PALIPROMPT_<TABLE>_<KEY>, e.g. PALIPROMPT_NATS_URL) read with
// lookup, and validates the result. An empty path reads no file. Keys the
// file does not set keep their defaults; an unknown key is an error.
func LoadConfig(path string, lookup func(string) (string, bool)) (Config, error) {
	cfg := DefaultConfig()
	if path != "" {
		if err := decodeConfigFile(path, &cfg); err != nil {
			return Config{}, err
		}
	}
	if lookup == nil {
		lookup = os.LookupEnv
	}
	if err := applyEnv(&cfg, lookup); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// decodeConfigFile decodes a TOML file into cfg, strictly.
func decodeConfigFile(path string, cfg *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return core.Errorf(core.ErrConfig, "read %s: %v", path, err)
	}
	md, err := toml.Decode(string(data), cfg)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) && pe.LastKey != "" {
			return core.Errorf(core.ErrConfig, "%s line %d: %s: %s", path, pe.Position.Line, pe.LastKey, pe.Message)
		}
		return core.Errorf(core.ErrConfig, "%s: %v", path, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = strconv.Quote(k.String())
		}
		return core.Errorf(core.ErrConfig, "%s: unknown key %s (the repository's config.toml lists every key)",
			path, strings.Join(keys, ", "))
	}
	return nil
}

// StoreDir is the embedded server's JetStream store directory.
func (c Config) StoreDir() string {
	if c.NATS.Embedded.StoreDir != "" {
		return c.NATS.Embedded.StoreDir
	}
	return filepath.Join(c.DataDir, "jetstream")
}

// MaxPixels is Limits.MaxMegapixels in pixels.
func (c Config) MaxPixels() int {
	return int(c.Limits.MaxMegapixels * 1e6)
}
