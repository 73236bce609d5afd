package plugin

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"

	"github.com/nats-io/nats.go"

	"paliprompt/core"
)

// Headers of a result or failure event that identify the reference it
// answers (the same is in the JSON's "reference").
const (
	HeaderRefStream = "Paliprompt-Reference-Stream"
	HeaderRefSeq    = "Paliprompt-Reference-Seq"
	HeaderDigest    = "Paliprompt-Request-Digest"
)

// Reference identifies one reference message of the event bus: the
// stream and sequence it was stored under (a redelivery keeps both; a new
// publish gets a new sequence) and the digest of the request it carries.
type Reference struct {
	Stream   string `json:"stream"`
	Sequence uint64 `json:"sequence"`
	// Digest is RequestDigest of the reference: "sha256:<hex>".
	Digest string `json:"digest"`
}

// MsgID is the Nats-Msg-Id of the result of a reference with this id:
// "<id>:<sequence>:<first 16 hex digits of the digest>". The sequence
// tells two references apart, whatever their id and body; the digest
// keeps a references stream that was deleted and re-created (its
// sequences start at 1 again) from merging a new request with an old
// result still inside the results stream's duplicate window. A redelivery
// keeps all three, so its result is stored once.
func (r Reference) MsgID(id string) string {
	digest := r.Digest[len("sha256:"):]
	return id + ":" + strconv.FormatUint(r.Sequence, 10) + ":" + digest[:16]
}

// header puts the reference into an event's headers.
func (r Reference) header(h nats.Header) {
	h.Set(HeaderRefStream, r.Stream)
	h.Set(HeaderRefSeq, strconv.FormatUint(r.Sequence, 10))
	h.Set(HeaderDigest, r.Digest)
}

// requestHeaders are the headers decodeRequest reads: the ones that make
// two requests with the same body different requests.
func requestHeaders() []string {
	names := []string{"Content-Type", HeaderID, HeaderTimeout, HeaderPlace}
	for _, a := range core.Args {
		names = append(names, a.Header)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// RequestDigest is the SHA-256 of a request as paliprompt reads it: for
// each header of requestHeaders that is present (NATS header names are
// case-sensitive), in byte order of the names, one line "Name: value\n" per value; then an empty line
// "\n"; then the body. It is "sha256:" and 64 hex digits. Two messages
// with the same digest are the same request; headers paliprompt does not
// read (Nats-Msg-Id, tracing) do not count.
func RequestDigest(header nats.Header, body []byte) string {
	h := sha256.New()
	for _, name := range requestHeaders() {
		for _, v := range header.Values(name) {
			h.Write([]byte(name + ": " + v + "\n"))
		}
	}
	h.Write([]byte("\n"))
	h.Write(body)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
