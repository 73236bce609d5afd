package plugin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// TestConnectOptions: the plugin connects to servers that require a user
// and password, a token, an nkey, or TLS with a client certificate, each
// configured in the [nats] table, and serves over that connection.
func TestConnectOptions(t *testing.T) {
	dir := t.TempDir()
	pub, seedFile := userNkey(t, dir)
	serverTLS, files := testTLS(t, dir)

	tests := []struct {
		name   string
		server func(*server.Options)
		client func(*NATSConfig)
		// url scheme of the server for the client: "nats" or "tls".
		scheme string
	}{
		{"user and password", func(o *server.Options) { o.Username, o.Password = "pp", "secret" },
			func(c *NATSConfig) { c.User, c.Password = "pp", "secret" }, "nats"},
		{"token", func(o *server.Options) { o.Authorization = "s3cr3t" },
			func(c *NATSConfig) { c.Token = "s3cr3t" }, "nats"},
		{"nkey seed", func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} },
			func(c *NATSConfig) { c.NkeySeed = seedFile }, "nats"},
		{"TLS with a client certificate", func(o *server.Options) { o.TLSConfig, o.TLS, o.TLSVerify = serverTLS, true, true },
			func(c *NATSConfig) { c.TLSCA, c.TLSCert, c.TLSKey = files.ca, files.cert, files.key }, "tls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true}
			tt.server(opts)
			srv, err := server.NewServer(opts)
			if err != nil {
				t.Fatal(err)
			}
			srv.Start()
			defer srv.Shutdown()
			if !srv.ReadyForConnections(10 * time.Second) {
				t.Fatal("server did not start")
			}
			url := tt.scheme + "://" + srv.Addr().String()
			cfg := testConfig(t, url)
			tt.client(&cfg.NATS)

			// Without the credentials the connection is refused, clearly.
			if _, err := nats.Connect(url, nats.Timeout(2*time.Second)); err == nil {
				t.Fatal("the server accepts anyone: the test proves nothing")
			}
			r := startPlugin(t, cfg, Deps{})
			defer r.stop(t)

			// A client with the same options asks the plugin.
			clientOpts, err := connectOptions(cfg.NATS, discardLogger(), nil)
			if err != nil {
				t.Fatal(err)
			}
			nc, err := nats.Connect(url, clientOpts...)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if reply := decodeReply(t, request(t, nc, "paliprompt.v1.layout", nil, []byte(`{"width": 4, "height": 4}`))); reply.Image.Width != 4 {
				t.Errorf("reply %+v", reply)
			}
		})
	}
}

// TestConnectErrorsAreClear: a wrong credential or a missing file fails at
// once with a message naming it, instead of retrying forever.
func TestConnectErrorsAreClear(t *testing.T) {
	opts := &server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true, Username: "pp", Password: "secret"}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer srv.Shutdown()
	srv.ReadyForConnections(10 * time.Second)
	for name, set := range map[string]func(*NATSConfig){
		"wrong password":    func(c *NATSConfig) { c.User, c.Password = "pp", "wrong" },
		"missing creds":     func(c *NATSConfig) { c.Creds = "/nonexistent/user.creds" },
		"missing nkey seed": func(c *NATSConfig) { c.NkeySeed = "/nonexistent/user.nk" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, srv.ClientURL())
			set(&cfg.NATS)
			p, err := New(cfg, Deps{Log: discardLogger()})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- p.Serve(t.Context()) }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("Serve returned no error")
				}
				t.Log(err)
			case <-time.After(10 * time.Second):
				t.Fatal("Serve kept retrying a connection that cannot work")
			}
		})
	}
}

// userNkey makes a user nkey and writes its seed to a file in dir.
func userNkey(t *testing.T, dir string) (public, seedFile string) {
	t.Helper()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	public, _ = user.PublicKey()
	seedFile = filepath.Join(dir, "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return public, seedFile
}

type tlsFiles struct{ ca, cert, key, serverCert, serverKey string }

// testTLS makes a CA, a server certificate for 127.0.0.1 and a client
// certificate, writes the client's files, and returns the server's
// tls.Config (which requires and verifies client certificates).
func testTLS(t *testing.T, dir string) (*tls.Config, tlsFiles) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "paliprompt test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage, ip net.IP) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "paliprompt test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
		}
		if ip != nil {
			tmpl.IPAddresses = []net.IP{ip}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	pemFile := func(name, kind string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	serverDER, serverKey := issue(2, x509.ExtKeyUsageServerAuth, net.ParseIP("127.0.0.1"))
	clientDER, clientKey := issue(3, x509.ExtKeyUsageClientAuth, nil)
	clientKeyDER, _ := x509.MarshalECPrivateKey(clientKey)
	serverKeyDER, _ := x509.MarshalECPrivateKey(serverKey)
	files := tlsFiles{
		ca:         pemFile("ca.pem", "CERTIFICATE", caDER),
		cert:       pemFile("client.pem", "CERTIFICATE", clientDER),
		key:        pemFile("client-key.pem", "EC PRIVATE KEY", clientKeyDER),
		serverCert: pemFile("server.pem", "CERTIFICATE", serverDER),
		serverKey:  pemFile("server-key.pem", "EC PRIVATE KEY", serverKeyDER),
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, files
}
