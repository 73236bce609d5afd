package paligemma

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"paliprompt/grounding/internal/native"
)

// modelSpec is what the grounder needs to know about a model folder, read
// from its config.json, generation_config.json, tokenizer.json and the
// decoder's graph: nothing here is hard-coded.
type modelSpec struct {
	dir                      string
	layers, kvHeads, headDim int
	hidden, vocab            int
	imageTokens              int
	bos, pad, image          int
	eos                      []int
	loc0, seg0               int // ids of <loc0000> and <seg000>, -1 when absent
	layout                   decoderLayout
	kvType                   native.DType
	// slidingWindow is text_config.sliding_window when the decoder takes
	// the sliding-window layers' mask from the caller
	// (sliding_attention_mask); 0 when it has no such input (Gemma 1, the
	// community layout, and own-layout exports that derive it in the graph).
	slidingWindow int
}

// decoderLayout tells the two decoder exports apart.
type decoderLayout int

const (
	// layoutOwn is the project's export: an additive attention_mask input
	// (batches of different prompt lengths), last-position logits.
	layoutOwn decoderLayout = iota
	// layoutCommunity is the onnx-community / transformers.js export: no
	// mask, logits for every position, batch 1.
	layoutCommunity
)

func (l decoderLayout) String() string {
	if l == layoutOwn {
		return "own (batched, attention_mask)"
	}
	return "onnx-community (batch 1)"
}

// inputSlidingMask is the own-layout decoder's input for the
// sliding-window layers' mask (exports before it derived that mask in the
// graph from attention_mask).
const inputSlidingMask = "sliding_attention_mask"

// The files of a model folder.
const (
	fileConfig     = "config.json"
	fileGeneration = "generation_config.json"
	filePreprocess = "preprocessor_config.json"
	fileTokenizer  = "tokenizer.json"
	fileVision     = "onnx/vision_encoder.onnx"
	fileEmbed      = "onnx/embed_tokens.onnx"
	fileDecoder    = "onnx/decoder_model_merged.onnx"
)

// intList reads a JSON int or list of ints (eos_token_id is either).
type intList []int

func (l *intList) UnmarshalJSON(b []byte) error {
	var one int
	if err := json.Unmarshal(b, &one); err == nil {
		*l = intList{one}
		return nil
	}
	var many []int
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want an int or a list of ints, got %s", b)
	}
	*l = many
	return nil
}

type hfConfig struct {
	ImageTokenIndex *int    `json:"image_token_index"`
	BOS             *int    `json:"bos_token_id"`
	EOS             intList `json:"eos_token_id"`
	Pad             *int    `json:"pad_token_id"`
	Text            struct {
		Layers         int     `json:"num_hidden_layers"`
		KVHeads        int     `json:"num_key_value_heads"`
		Heads          int     `json:"num_attention_heads"`
		HeadDim        int     `json:"head_dim"`
		Hidden         int     `json:"hidden_size"`
		Vocab          int     `json:"vocab_size"`
		NumImageTokens int     `json:"num_image_tokens"`
		SlidingWindow  *int    `json:"sliding_window"`
		BOS            *int    `json:"bos_token_id"`
		EOS            intList `json:"eos_token_id"`
		Pad            *int    `json:"pad_token_id"`
	} `json:"text_config"`
	Vision struct {
		ImageSize int `json:"image_size"`
		PatchSize int `json:"patch_size"`
	} `json:"vision_config"`
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

// loadModelSpec reads the model folder's configuration and the decoder's
// inputs. Errors name the file and the field.
func loadModelSpec(dir string) (*modelSpec, error) {
	var c hfConfig
	if err := readJSON(filepath.Join(dir, fileConfig), &c); err != nil {
		return nil, err
	}
	s := &modelSpec{dir: dir, layers: c.Text.Layers, kvHeads: c.Text.KVHeads, headDim: c.Text.HeadDim,
		hidden: c.Text.Hidden, vocab: c.Text.Vocab, imageTokens: c.Text.NumImageTokens}
	if s.headDim == 0 && c.Text.Heads > 0 {
		s.headDim = s.hidden / c.Text.Heads
	}
	if s.imageTokens == 0 && c.Vision.PatchSize > 0 {
		side := c.Vision.ImageSize / c.Vision.PatchSize
		s.imageTokens = side * side
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"text_config.num_hidden_layers", s.layers}, {"text_config.num_key_value_heads", s.kvHeads},
		{"text_config.head_dim", s.headDim}, {"text_config.hidden_size", s.hidden},
		{"text_config.vocab_size", s.vocab}, {"number of image tokens (vision_config.image_size / patch_size)", s.imageTokens}} {
		if f.v <= 0 {
			return nil, fmt.Errorf("%s: %s is missing or not positive", filepath.Join(dir, fileConfig), f.name)
		}
	}
	var gen struct {
		EOS intList `json:"eos_token_id"`
	}
	if err := readJSON(filepath.Join(dir, fileGeneration), &gen); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	// Stop on every eos id any of the files lists (PaliGemma 2 lists
	// <eos> and <end_of_turn>).
	for _, l := range []intList{gen.EOS, c.EOS, c.Text.EOS} {
		for _, id := range l {
			if !slices.Contains(s.eos, id) {
				s.eos = append(s.eos, id)
			}
		}
	}
	ids := hfConfigIDs{bos: firstSet(c.BOS, c.Text.BOS), pad: firstSet(c.Pad, c.Text.Pad), image: c.ImageTokenIndex}
	if err := s.resolveTokens(ids); err != nil {
		return nil, err
	}
	if err := s.readDecoderIO(c.Text.SlidingWindow); err != nil {
		return nil, err
	}
	return s, nil
}

func firstSet(ps ...*int) *int {
	for _, p := range ps {
		if p != nil {
			return p
		}
	}
	return nil
}

// readDecoderIO detects the decoder layout, its mask inputs and the KV
// cache type from the decoder's graph, and checks its shapes against
// config.json (window: text_config.sliding_window, nil when absent).
func (s *modelSpec) readDecoderIO(window *int) error {
	path := filepath.Join(s.dir, fileDecoder)
	io, err := native.ReadModelIO(path)
	if err != nil {
		return fmt.Errorf("decoder %s: %w", path, err)
	}
	in := map[string]native.IOInfo{}
	for _, i := range io.Inputs {
		in[i.Name] = i
	}
	out := map[string]native.IOInfo{}
	for _, o := range io.Outputs {
		out[o.Name] = o
	}
	s.layout = layoutCommunity
	if _, ok := in["attention_mask"]; ok {
		s.layout = layoutOwn
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("decoder %s does not match %s: %s", path, filepath.Join(s.dir, fileConfig), fmt.Sprintf(format, args...))
	}
	if _, ok := in[inputSlidingMask]; ok {
		if s.layout != layoutOwn {
			return fmt.Errorf("decoder %s has a %s input but no attention_mask", path, inputSlidingMask)
		}
		if window == nil || *window <= 0 {
			return bad("it takes %s but text_config.sliding_window is missing or not positive", inputSlidingMask)
		}
		s.slidingWindow = *window
	}
	for _, name := range []string{"inputs_embeds", "position_ids"} {
		if _, ok := in[name]; !ok {
			return fmt.Errorf("decoder %s has no %s input", path, name)
		}
	}
	if d := lastDim(in["inputs_embeds"]); d > 0 && d != int64(s.hidden) {
		return bad("inputs_embeds has hidden size %d, config says %d", d, s.hidden)
	}
	if d := lastDim(out["logits"]); d > 0 && d != int64(s.vocab) {
		return bad("logits have %d entries, config says vocab_size %d", d, s.vocab)
	}
	past := 0
	for _, i := range io.Inputs {
		if len(i.Name) > 16 && i.Name[:16] == "past_key_values." {
			past++
		}
	}
	if past != 2*s.layers {
		return bad("%d past_key_values inputs, config says %d layers (want %d)", past, s.layers, 2*s.layers)
	}
	k, ok := in["past_key_values.0.key"]
	if !ok || len(k.Shape) != 4 {
		return fmt.Errorf("decoder %s: past_key_values.0.key missing or not 4-D", path)
	}
	if (k.Shape[1] > 0 && k.Shape[1] != int64(s.kvHeads)) || (k.Shape[3] > 0 && k.Shape[3] != int64(s.headDim)) {
		return bad("past_key_values.0.key is %v, config says %d KV heads of %d", k.Shape, s.kvHeads, s.headDim)
	}
	if k.DType != native.Float32 && k.DType != native.Float16 {
		return fmt.Errorf("decoder %s: KV cache type %s is not supported (float32 or float16)", path, k.DType)
	}
	s.kvType = k.DType
	return nil
}

func lastDim(i native.IOInfo) int64 {
	if len(i.Shape) == 0 {
		return -1
	}
	return i.Shape[len(i.Shape)-1]
}

// tokenIDs looks up tokens in a tokenizer.json (added tokens, then the
// model's vocabulary).
func tokenIDs(path string, tokens ...string) (map[string]int, error) {
	var tj struct {
		Added []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
		} `json:"added_tokens"`
		Model struct {
			Vocab json.RawMessage `json:"vocab"`
		} `json:"model"`
	}
	if err := readJSON(path, &tj); err != nil {
		return nil, err
	}
	vocab := map[string]int{}
	_ = json.Unmarshal(tj.Model.Vocab, &vocab) // BPE/WordPiece: a map; Unigram: a list (ids by position)
	if len(vocab) == 0 {
		var list [][2]any
		if json.Unmarshal(tj.Model.Vocab, &list) == nil {
			for i, e := range list {
				if s, ok := e[0].(string); ok {
					vocab[s] = i
				}
			}
		}
	}
	for _, a := range tj.Added {
		vocab[a.Content] = a.ID
	}
	out := map[string]int{}
	for _, t := range tokens {
		if id, ok := vocab[t]; ok {
			out[t] = id
		}
	}
	return out, nil
}

// resolveTokens fills the special ids from the tokenizer, checking them
// against config.json where both name one.
func (s *modelSpec) resolveTokens(c hfConfigIDs) error {
	path := filepath.Join(s.dir, fileTokenizer)
	ids, err := tokenIDs(path, "<bos>", "<eos>", "<pad>", "<image>", "<loc0000>", "<loc1023>", "<seg000>", "<seg127>")
	if err != nil {
		return err
	}
	pick := func(name string, fromConfig *int) (int, error) {
		id, ok := ids[name]
		switch {
		case fromConfig != nil && !ok && name != "<pad>":
			return 0, fmt.Errorf("%s has no %s token, config.json says id %d (tokenizer from another model?)", path, name, *fromConfig)
		case fromConfig != nil && ok && *fromConfig != id:
			return 0, fmt.Errorf("%s: %s is id %d but config.json says %d (tokenizer from another model?)", path, name, id, *fromConfig)
		case fromConfig != nil:
			return *fromConfig, nil
		case ok:
			return id, nil
		}
		return 0, fmt.Errorf("%s has no %s token", path, name)
	}
	if s.bos, err = pick("<bos>", c.bos); err != nil {
		return err
	}
	if s.image, err = pick("<image>", c.image); err != nil {
		return err
	}
	if s.pad, err = pick("<pad>", c.pad); err != nil {
		s.pad = 0 // padding is masked: any valid id will do
	}
	if len(s.eos) == 0 {
		id, ok := ids["<eos>"]
		if !ok {
			return fmt.Errorf("%s: no eos token in the tokenizer or the configs", path)
		}
		s.eos = []int{id}
	}
	s.loc0, s.seg0 = -1, -1
	if a, b := ids["<loc0000>"], ids["<loc1023>"]; a > 0 && b == a+1023 {
		s.loc0 = a
	}
	if a, b := ids["<seg000>"], ids["<seg127>"]; a > 0 && b == a+127 {
		s.seg0 = a
	}
	for _, id := range append([]int{s.bos, s.image}, s.eos...) {
		if id < 0 || id >= s.vocab {
			return fmt.Errorf("%s: token id %d is outside the model's vocabulary of %d (tokenizer from another model?)", path, id, s.vocab)
		}
	}
	return nil
}

// hfConfigIDs are the special ids config.json names.
type hfConfigIDs struct{ bos, pad, image *int }
