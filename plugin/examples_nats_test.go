package plugin

import (
	"os"
	"os/exec"
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

const exampleServerConfig = "../examples/nats/paliprompt.conf"

// exampleServer starts a nats-server from examples/nats/paliprompt.conf
// (on a free port, its store in a temporary folder), with the passwords
// exercise uses: admin's is admin, the others' their names.
func exampleServer(t *testing.T) (*server.Server, *server.Options) {
	t.Helper()
	t.Setenv("ADMIN_PASSWORD", "admin")
	t.Setenv("PALIPROMPT_PASSWORD", "paliprompt")
	t.Setenv("PALIPROMPT_CREATOR_PASSWORD", "paliprompt-creator")
	opts, err := server.ProcessConfigFile(exampleServerConfig)
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port, opts.StoreDir, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, t.TempDir(), true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10e9) {
		t.Fatal("nats-server from the example config did not start")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv, opts
}

// TestExampleServerConfig: the example server configuration gives
// paliprompt's two users exactly NeededPermissions, and paliprompt runs
// through a server started from it as each: with the streams made ahead
// of time by examples/nats/setup.sh (when the nats CLI is here), and
// creating them itself.
func TestExampleServerConfig(t *testing.T) {
	_, opts := exampleServer(t)
	for name, create := range map[string]bool{"paliprompt": false, "paliprompt-creator": true} {
		i := slices.IndexFunc(opts.Users, func(u *server.User) bool { return u.Username == name })
		if i < 0 {
			t.Fatalf("%s has no user %q", exampleServerConfig, name)
		}
		got, want := opts.Users[i].Permissions, NeededPermissions(DefaultConfig(), create).server()
		if got == nil || got.Publish == nil || got.Subscribe == nil || got.Response == nil {
			t.Fatalf("user %s: permissions %+v", name, got)
		}
		sameSet(t, name+" publish", got.Publish.Allow, want.Publish.Allow)
		sameSet(t, name+" subscribe", got.Subscribe.Allow, want.Subscribe.Allow)
		if *got.Response != *want.Response || len(got.Publish.Deny)+len(got.Subscribe.Deny) > 0 {
			t.Errorf("user %s: responses %+v, want %+v", name, *got.Response, *want.Response)
		}
	}

	t.Run("created ahead by setup.sh", func(t *testing.T) {
		srv, _ := exampleServer(t)
		precreate := true
		if nats, err := exec.LookPath("nats"); err == nil {
			cmd := exec.Command("bash", "../examples/nats/setup.sh")
			cmd.Env = append(os.Environ(), "NATS_URL="+srv.ClientURL(), "NATS_USER=admin", "NATS_PASSWORD=admin", "NATS_CONTEXT=")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("setup.sh (%s): %v\n%s", nats, err, out)
			}
			precreate = false
		} else {
			t.Log("the nats CLI is not on PATH: setup.sh not run; the test creates the same streams, consumer and buckets")
		}
		if _, err := exercise(t, srv, "paliprompt", precreate); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("self-creating", func(t *testing.T) {
		srv, _ := exampleServer(t)
		if _, err := exercise(t, srv, "paliprompt-creator", false); err != nil {
			t.Fatal(err)
		}
	})
}

func sameSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("%s: missing %q", what, w)
			}
		}
		for _, g := range got {
			if !slices.Contains(want, g) {
				t.Errorf("%s: not needed %q", what, g)
			}
		}
	}
}
