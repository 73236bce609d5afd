package plugin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// operatorServer is a nats-server in operator mode (what nsc sets up):
// one operator, one account with JetStream, users as .creds files.
type operatorServer struct {
	srv     *server.Server
	account nkeys.KeyPair
	dir     string
}

func startOperatorServer(t *testing.T) *operatorServer {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	operator, err := nkeys.CreateOperator()
	must(err)
	opPub, _ := operator.PublicKey()
	resolver := &server.MemAccResolver{}
	newAccount := func(name string, jetStream bool) nkeys.KeyPair {
		kp, err := nkeys.CreateAccount()
		must(err)
		pub, _ := kp.PublicKey()
		ac := jwt.NewAccountClaims(pub)
		ac.Name = name
		if jetStream {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		token, err := ac.Encode(operator)
		must(err)
		must(resolver.Store(pub, token))
		return kp
	}
	system := newAccount("SYS", false)
	sysPub, _ := system.PublicKey()
	account := newAccount("AIVIZ", true)
	opClaims := jwt.NewOperatorClaims(opPub)
	opClaims.SystemAccount = sysPub
	opJWT, err := opClaims.Encode(operator)
	must(err)
	opDecoded, err := jwt.DecodeOperatorClaims(opJWT)
	must(err)

	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
		TrustedOperators: []*jwt.OperatorClaims{opDecoded}, AccountResolver: resolver, SystemAccount: sysPub,
	})
	must(err)
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("operator-mode server did not start")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return &operatorServer{srv: srv, account: account, dir: t.TempDir()}
}

// creds writes a .creds file for a user of the account; nil permissions:
// everything.
func (o *operatorServer) creds(t *testing.T, name string, p *Permissions) string {
	t.Helper()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	if p != nil {
		uc.Pub.Allow.Add(p.Publish...)
		uc.Sub.Allow.Add(p.Subscribe...)
		uc.Resp = &jwt.ResponsePermission{MaxMsgs: 1, Expires: p.ResponsesExpire}
	}
	userJWT, err := uc.Encode(o.account)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	data, err := jwt.FormatUserConfig(userJWT, seed)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(o.dir, name+".creds")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCredsFileLeastPrivilege: against a secured bus in operator mode
// (JWTs, as nsc makes them), paliprompt connects with a .creds file whose
// user holds exactly NeededPermissions, and serves request/reply, the
// Object Store and the event bus, creating the streams itself.
func TestCredsFileLeastPrivilege(t *testing.T) {
	o := startOperatorServer(t)
	perms := NeededPermissions(DefaultConfig(), true)
	cfg := testConfig(t, o.srv.ClientURL())
	fastStages(&cfg)
	cfg.NATS.Creds = o.creds(t, "paliprompt", &perms)
	startPlugin(t, cfg, Deps{})

	adminOpts, err := connectOptions(NATSConfig{Name: "admin", InboxPrefix: "_INBOX", Creds: o.creds(t, "admin", nil)}, discardLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	admin := connectClient(t, o.srv.ClientURL(), adminOpts...)
	if reply := decodeReply(t, request(t, admin, "paliprompt.v1.layout", nil, []byte(`{"width": 4, "height": 4}`))); reply.Image.Width != 4 {
		t.Errorf("reply %+v", reply)
	}
	js := newJS(t, admin)
	publishReference(t, js, "aiviz.reference.creds-1", nil, []byte(`{"width": 8, "height": 8, "caption": "over creds"}`))
	waitFor(t, "the result", func() bool { return streamMsgs(t, js, "AIVIZ_PROMPTS") == 1 })
	if ev := resultEvents(t, js)[0]; ev.subject != "aiviz.prompt.ready.creds-1" {
		t.Errorf("event %s: %s", ev.subject, ev.data)
	}

	// A creds file of a user without the permissions: refused, named.
	cfg2 := testConfig(t, o.srv.ClientURL())
	cfg2.NATS.Creds = o.creds(t, "nobody", &Permissions{Subscribe: []string{"nothing"}})
	if _, err := tryStartPlugin(t, cfg2, Deps{}); err == nil || !strings.Contains(err.Error(), "Permissions Violation for") {
		t.Errorf("start with a user without permissions: %v", err)
	}
}
