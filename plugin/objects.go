package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"paliprompt/core"

	"github.com/nats-io/nats.go/jetstream"
)

// objectStores holds the two Object Store buckets: images too large for a
// message (read by image_object) and masks too large for a reply.
type objectStores struct {
	cfg     ObjectsConfig
	images  jetstream.ObjectStore
	results jetstream.ObjectStore
	plans   jetstream.ObjectStore // nil unless objects.keep_plans
	// chunkSize keeps each stored chunk within the server's max payload.
	chunkSize uint32
}

// openObjectStores opens both buckets, creating them when absent.
func openObjectStores(ctx context.Context, js jetstream.JetStream, cfg ObjectsConfig, maxPayload int64) (*objectStores, error) {
	images, err := openBucket(ctx, js, jetstream.ObjectStoreConfig{
		Bucket:      cfg.ImagesBucket,
		Description: "paliprompt: reference images too large for one message (request field image_object)",
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, err
	}
	results, err := openBucket(ctx, js, jetstream.ObjectStoreConfig{
		Bucket:      cfg.ResultsBucket,
		Description: "paliprompt: masks and previews too large to inline in a reply",
		TTL:         time.Duration(cfg.ResultsTTL),
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, err
	}
	var plans jetstream.ObjectStore
	if cfg.KeepPlans {
		if plans, err = openBucket(ctx, js, jetstream.ObjectStoreConfig{
			Bucket:      cfg.PlansBucket,
			Description: "paliprompt: the plans of results, for verify requests by id",
			TTL:         time.Duration(cfg.PlansTTL),
			Storage:     jetstream.FileStorage,
		}); err != nil {
			return nil, err
		}
	}
	// Object Store's default chunk is 128KiB; leave room for the headers.
	chunk := uint32(min(128<<10, max(maxPayload-1024, 512)))
	return &objectStores{cfg: cfg, images: images, results: results, plans: plans, chunkSize: chunk}, nil
}

func openBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	store, err := js.ObjectStore(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		store, err = js.CreateObjectStore(ctx, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("open object store bucket %s: %w", cfg.Bucket, err)
	}
	return store, nil
}

// fetchImage reads an image from the images bucket, checking its size from
// the object's info before reading it.
func (o *objectStores) fetchImage(ctx context.Context, name string, max int64) ([]byte, error) {
	info, err := o.images.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, core.Errorf(core.ErrBadRequest, "image_object %q not found in bucket %s", name, o.cfg.ImagesBucket)
	}
	if err != nil {
		return nil, core.Errorf(core.ErrUnavailable, "read image_object %q from bucket %s: %v", name, o.cfg.ImagesBucket, err)
	}
	if int64(info.Size) > max {
		return nil, core.Errorf(core.ErrTooLarge, "image_object %q is %d bytes, limit is %d (limits.max_image_bytes)", name, info.Size, max)
	}
	data, err := o.images.GetBytes(ctx, name)
	if err != nil {
		return nil, core.Errorf(core.ErrUnavailable, "read image_object %q from bucket %s: %v", name, o.cfg.ImagesBucket, err)
	}
	return data, nil
}

// place decides where each PNG of a reply goes: inline when small, else
// into the results bucket. When the encoded reply is still over
// maxPayload, every PNG moves to the bucket. It returns the encoded reply.
func (o *objectStores) place(ctx context.Context, r *Reply, maxPayload int) ([]byte, error) {
	if err := o.storeBlobs(ctx, r, func(b *Blob) bool { return int64(len(b.PNG)) > int64(o.cfg.InlineMaskBytes) }); err != nil {
		return nil, err
	}
	data, err := r.encode()
	if err != nil || len(data) <= maxPayload {
		return data, err
	}
	if o != nil {
		if err := o.storeBlobs(ctx, r, func(b *Blob) bool { return b.PNG != nil }); err != nil {
			return nil, err
		}
		if data, err = r.encode(); err != nil || len(data) <= maxPayload {
			return data, err
		}
		// The A1111 bodies carry their images inline; as a last resort
		// they go to the bucket too, as JSON documents.
		if err := o.storePayloads(ctx, r); err != nil {
			return nil, err
		}
		if data, err = r.encode(); err != nil || len(data) <= maxPayload {
			return data, err
		}
	}
	return nil, fmt.Errorf("reply is %d bytes, over the max payload of %d bytes even with its PNGs and A1111 bodies in the object store", len(data), maxPayload)
}

// storePayloads moves the plan's A1111 request bodies into the results
// bucket beside the reply's PNGs (objectPrefix, then a1111-<...>.json),
// named in Reply.Payloads.
func (o *objectStores) storePayloads(ctx context.Context, r *Reply) error {
	n := 0
	err := r.movePayloads(func(name string, body []byte) (*Blob, error) {
		b := &Blob{PNG: body, Bytes: len(body), name: name}
		n++
		return b, o.store(ctx, r.objectPrefix(), b)
	})
	if n > 0 && err == nil && r.clock != nil {
		r.clock.Lap(fmt.Sprintf("object store (%d A1111 bodies)", n))
	}
	return err
}

// storeBlobs moves the blobs that move wants into the results bucket, a
// stage of the request when there are any.
func (o *objectStores) storeBlobs(ctx context.Context, r *Reply, move func(*Blob) bool) error {
	if o == nil {
		return nil
	}
	n := 0
	for _, b := range r.blobs() {
		if b.PNG != nil && move(b) {
			if err := o.store(ctx, r.objectPrefix(), b); err != nil {
				return err
			}
			n++
		}
	}
	if n > 0 && r.clock != nil {
		r.clock.Lap(fmt.Sprintf("object store (%d uploads)", n))
	}
	return nil
}

// store moves one blob into the results bucket, under prefix.
func (o *objectStores) store(ctx context.Context, prefix string, b *Blob) error {
	name := prefix + b.name
	meta := jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: o.chunkSize}}
	if _, err := o.results.Put(ctx, meta, bytes.NewReader(b.PNG)); err != nil {
		return fmt.Errorf("store %s in bucket %s: %w", name, o.cfg.ResultsBucket, err)
	}
	b.PNG, b.Bucket, b.Object = nil, o.cfg.ResultsBucket, name
	return nil
}
