package sdxl

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"paliprompt/core"
)

// The tools' own parsing rules, as small reference functions. Each names
// the file and version it follows; the tests below run the plan's
// prompts through them and check that user and model text never changes
// the number of regions, that each region's text stays its own, and that
// no text of theirs becomes syntax.

// a1111Attention is A1111's parse_prompt_attention (modules/prompt_parser.py,
// v1.10.1): text pieces with their attention weight; "BREAK" pieces have
// weight -1. (Go's \b is ASCII-only where Python's is Unicode; the
// prompts under test have no capital BREAK of their own either way.)
func a1111Attention(text string) []weighted {
	reAttention := regexp.MustCompile(`\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:([+-]?[.\d]+)\)|\)|]|[^\\()\[\]:]+|:`)
	reBreak := regexp.MustCompile(`\s*\bBREAK\b\s*`)
	var res []weighted
	var round, square []int
	multiply := func(from int, m float64) {
		for p := from; p < len(res); p++ {
			res[p].weight *= m
		}
	}
	for _, m := range reAttention.FindAllStringSubmatchIndex(text, -1) {
		tok := text[m[0]:m[1]]
		hasWeight := m[2] >= 0
		switch {
		case strings.HasPrefix(tok, `\`):
			res = append(res, weighted{tok[1:], 1})
		case tok == "(":
			round = append(round, len(res))
		case tok == "[":
			square = append(square, len(res))
		case hasWeight && len(round) > 0:
			w, _ := strconv.ParseFloat(text[m[2]:m[3]], 64)
			multiply(round[len(round)-1], w)
			round = round[:len(round)-1]
		case tok == ")" && len(round) > 0:
			multiply(round[len(round)-1], 1.1)
			round = round[:len(round)-1]
		case tok == "]" && len(square) > 0:
			multiply(square[len(square)-1], 1/1.1)
			square = square[:len(square)-1]
		default:
			for i, part := range reBreak.Split(tok, -1) {
				if i > 0 {
					res = append(res, weighted{"BREAK", -1})
				}
				res = append(res, weighted{part, 1})
			}
		}
	}
	for _, p := range round {
		multiply(p, 1.1)
	}
	for _, p := range square {
		multiply(p, 1/1.1)
	}
	return res
}

type weighted struct {
	text   string
	weight float64
}

// a1111ExtraNetworks finds extra network tags as A1111 does
// (modules/extra_networks.py v1.10.1, re_extra_net = <(\w+):([^>]+)>).
func a1111ExtraNetworks(prompt string) []string {
	return regexp.MustCompile(`<(\w+):([^>]+)>`).FindAllString(prompt, -1)
}

// a1111Subprompts splits a prompt at AND and reads each part's trailing
// ":weight" (modules/prompt_parser.py v1.10.1, re_AND and re_weight);
// weights are nil where a part has none.
func a1111Subprompts(prompt string) ([]string, []*float64) {
	reAND := regexp.MustCompile(`\bAND\b`)
	reWeight := regexp.MustCompile(`^(\s*.*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$`)
	parts := reAND.Split(prompt, -1)
	weights := make([]*float64, len(parts))
	for i, part := range parts {
		if m := reWeight.FindStringSubmatch(part); m != nil && m[2] != "" {
			w, _ := strconv.ParseFloat(m[2], 64)
			weights[i] = &w
		}
	}
	return parts, weights
}

// rpRegions is how Regional Prompter (scripts/rp.py and regions.py at
// be62345, 2025-06-23) turns a Mask or Matrix mode prompt into region
// prompts: process() runs allchanger(AND -> BREAK), bckeydealer (ADDP in
// the upper-cased prompt switches to Prompt mode), keyreplacer (every
// ADDCOMM, ADDROW, ADDCOL, ADDBASE, ADDP -> BREAK), and, in Latent mode,
// BREAK -> AND; the parts are split at the separator. The first part is
// the base prompt.
func rpRegions(prompt, calcMode string) (parts []string, promptMode bool) {
	p := strings.ReplaceAll(prompt, "AND", "BREAK")
	promptMode = strings.Contains(strings.ToUpper(p), "ADDP")
	for _, key := range []string{"ADDCOMM", "ADDROW", "ADDCOL", "ADDBASE", "ADDP"} {
		p = strings.ReplaceAll(p, key, "BREAK")
	}
	sep := "BREAK"
	if calcMode == "Latent" {
		p, sep = strings.ReplaceAll(p, "BREAK", "AND"), "AND"
	}
	for _, part := range strings.Split(p, sep) {
		parts = append(parts, strings.TrimSpace(part))
	}
	return parts, promptMode
}

// forgeCoupleLines is Forge Couple's split of the prompt into couples
// (scripts/forge_couple.py v7.0.7): parse_common_prompt with the common
// prompt syntax ("{ }", the default, or "< >"; "off" skips it), then
// split at the separator, each line stripped.
func forgeCoupleLines(prompt, syntax, sep string) []string {
	if syntax != "off" {
		op, cs := regexp.QuoteMeta(syntax[:1]), regexp.QuoteMeta(syntax[2:])
		defs := map[string]string{}
		def := regexp.MustCompile(op + `([^` + op + cs + `]+?):([^` + op + cs + `]+?)` + cs)
		for _, m := range def.FindAllStringSubmatch(prompt, -1) {
			prompt = strings.ReplaceAll(prompt, m[0], strings.TrimSpace(m[2]))
			defs[strings.TrimSpace(m[1])] = strings.TrimSpace(m[2])
		}
		use := regexp.MustCompile(op + `([^` + op + cs + `]+?)` + cs)
		for _, m := range use.FindAllStringSubmatch(prompt, -1) {
			if v, ok := defs[strings.TrimSpace(m[1])]; ok {
				prompt = strings.ReplaceAll(prompt, m[0], v)
			}
		}
	}
	var out []string
	for _, line := range strings.Split(prompt, sep) {
		out = append(out, strings.TrimSpace(line))
	}
	return out
}

// comfyTokenWeights is ComfyUI's prompt weighting (comfy/sd1_clip.py of
// v0.3.64: escape_important, token_weights, parse_parentheses,
// unescape_important) and its embedding words (tokenize_with_weights
// splits at " embedding:"): the pieces with weights, and the embedding
// names it would look up.
func comfyTokenWeights(text string) ([]weighted, []string) {
	text = strings.ReplaceAll(strings.ReplaceAll(text, `\)`, "\x00\x01"), `\(`, "\x00\x02")
	var out []weighted
	var embeddings []string
	for _, piece := range comfyWeights(text, 1) {
		piece.text = strings.ReplaceAll(strings.ReplaceAll(piece.text, "\x00\x01", ")"), "\x00\x02", "(")
		words := regexp.MustCompile(` embedding:|\nembedding:`).Split(piece.text, -1)
		if strings.HasPrefix(words[0], "embedding:") {
			embeddings = append(embeddings, words[0])
		}
		embeddings = append(embeddings, words[1:]...)
		out = append(out, piece)
	}
	return out, embeddings
}

func comfyWeights(s string, current float64) []weighted {
	var out []weighted
	for _, x := range comfyParentheses(s) {
		if len(x) >= 2 && x[0] == '(' && x[len(x)-1] == ')' {
			x = x[1 : len(x)-1]
			w := current * 1.1
			if i := strings.LastIndex(x, ":"); i > 0 {
				if f, err := strconv.ParseFloat(x[i+1:], 64); err == nil {
					w, x = f, x[:i]
				}
			}
			out = append(out, comfyWeights(x, w)...)
			continue
		}
		out = append(out, weighted{x, current})
	}
	return out
}

func comfyParentheses(s string) []string {
	var out []string
	cur, level := "", 0
	for _, r := range s {
		switch {
		case r == '(':
			if level == 0 {
				if cur != "" {
					out = append(out, cur)
				}
				cur = "("
			} else {
				cur += "("
			}
			level++
		case r == ')':
			level--
			if level == 0 {
				out, cur = append(out, cur+")"), ""
			} else {
				cur += ")"
			}
		default:
			cur += string(r)
		}
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}

// omostLocals extracts the program as Omost's Canvas.from_bot_response
// does (lib_omost/canvas.py at the current main: the code between
// "```python\n" and "\n```") and reads the description argument of each
// add_local_description call (JSON string literals are Python string
// literals).
func omostLocals(t *testing.T, response string) []string {
	t.Helper()
	m := regexp.MustCompile("(?s)```python\n(.*?)\n```").FindStringSubmatch(response)
	if m == nil {
		t.Fatalf("omost: no python block in %q", response)
	}
	var out []string
	for _, block := range strings.Split(m[1], "canvas.add_local_description(")[1:] {
		d := regexp.MustCompile(`\n    description=("(?:[^"\\]|\\.)*"),\n`).FindStringSubmatch(block)
		if d == nil {
			t.Fatalf("omost: no description in %q", block)
		}
		var s string
		if err := json.Unmarshal([]byte(d[1]), &s); err != nil {
			t.Fatalf("omost: %v", err)
		}
		out = append(out, s)
	}
	return out
}

// adversarial texts: each keyword inside a word, braces, angle brackets,
// brackets, colons, newlines, non-ASCII.
var adversarial = []string{
	"STANDING", "HAND", "BRAND new", "a BREAKfast", "ADDBASEline", "ADDCOMMON", "addcolumn", "ADDROW boat", "shADDPot",
	"aDdRoW", "x AND y", "BREAK", "ADDCOL ADDROW", "{dog:cat}", "{dog}", "<lora:evil:1>", "<hypernet:x:1.5>", "<dog:cat>",
	"(word:1.5)", "((strong))", "[a:b:0.5]", "[a|b]", "a|b", "[weak]", "ratio 16:9", "end:1.5", "time 3: 30",
	"embedding:bad", "x embedding:bad", "line\nbreak", "tab\there", `\(escaped\)`, `back\\slash`, "日本語 ü é", "#comment",
	"\u2028sep", "caf\u00e9 AND\u00a0BREAK",
}

// adversarialCase is a three-object scene whose caption, labels and user
// terms carry adversarial text.
func adversarialCase(rng *rand.Rand) (core.Result, Request) {
	pick := func() string { return adversarial[rng.Intn(len(adversarial))] }
	res := core.Result{Width: 1024, Height: 768,
		Caption: fmt.Sprintf("a %s cat and a %s dog, %s", pick(), pick(), pick()),
		Objects: []core.Object{
			seg("cat "+pick(), 60, 100, 420, 500), det(pick()+" dog", 500, 200, 950, 700), det("lamp", 800, 20, 1000, 300),
		}}
	req := Request{ID: "adv", Positive: pick() + ", " + pick(), Negative: pick(), Regions: []RegionControl{
		{Object: "0", Prompt: pick(), Negative: pick()},
		{Object: "2", Prompt: pick(), LoRAs: []LoRA{{Name: "sdxl/detail.safetensors", Strength: 0.7}}},
	}}
	return res, req
}

func TestAdversarialTextKeepsRegions(t *testing.T) {
	c := newComposer(t, nil, nil)
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 60; i++ {
		res, req := adversarialCase(rng)
		if i%2 == 1 {
			req.Regions = nil // without LoRAs: Regional Prompter's Attention mode
		}
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			p := compose(t, c, layoutOf(t, res, ""), req)
			if len(p.Regions) != 4 {
				t.Fatalf("%d regions for 3 objects", len(p.Regions))
			}
			checkRegionalPrompter(t, p)
			checkForgeCouple(t, p)
			checkComfyUIText(t, p)
			checkWebUIText(t, p)
			if got := omostLocals(t, p.Omost.Code); len(got) != 3 || got[1] != p.Regions[1].Prompt {
				t.Errorf("omost locals %q", got)
			}
		})
	}
}

// TestKeywordsInsideWords is the case that broke: a caption with STANDING,
// HAND and BRAND gave Regional Prompter six region prompts for three.
func TestKeywordsInsideWords(t *testing.T) {
	res := core.Result{Width: 1024, Height: 1024, Caption: "a STANDING man with a HAND on a BRAND new car",
		Objects: []core.Object{det("STANDING man", 0, 0, 500, 1000), det("BRAND car", 520, 300, 1000, 1000)}}
	p := compose(t, newComposer(t, nil, nil), layoutOf(t, res, ""), Request{Positive: "HANDmade"})
	parts, _ := rpRegions(p.RegionalPrompter.Prompt, "Attention")
	if len(parts) != len(p.RegionalPrompter.Colors)+1 || len(parts) != 4 {
		t.Fatalf("Regional Prompter reads %d parts from %q", len(parts), p.RegionalPrompter.Prompt)
	}
	if !strings.Contains(p.Positive, "STandING man") || !strings.Contains(p.Positive, "Handmade") {
		t.Errorf("positive %q", p.Positive)
	}
}

func checkRegionalPrompter(t *testing.T, p Plan) {
	t.Helper()
	rp := p.RegionalPrompter
	parts, promptMode := rpRegions(rp.Prompt, rp.CalcMode)
	if promptMode || len(parts) != len(rp.Colors)+1 {
		t.Fatalf("Regional Prompter reads %d parts (prompt mode %v) for %d colours from %q", len(parts), promptMode, len(rp.Colors), rp.Prompt)
	}
	if want := strings.Join(p.PositiveChunks, phraseSep); parts[0] != want {
		t.Errorf("base part %q, want %q", parts[0], want)
	}
	for k, col := range rp.Colors {
		r := p.Regions[col.Region]
		if want := rpPart(r); parts[k+1] != want {
			t.Errorf("part %d is %q, want region %d's %q", k+1, parts[k+1], col.Region, want)
		}
	}
	if neg, _ := rpRegions(rp.NegativePrompt, rp.CalcMode); len(neg) != 1 && len(neg) != len(parts) {
		t.Errorf("negative has %d parts for %d prompt parts: %q", len(neg), len(parts), rp.NegativePrompt)
	}
	if m := rp.Matrix; m != nil {
		cells, promptMode := rpRegions(m.Prompt, "Attention")
		if promptMode || len(cells) < 2 {
			t.Errorf("matrix prompt %q reads as %d parts", m.Prompt, len(cells))
		}
	}
}

// rpPart is what a region's part of the Regional Prompter prompt must
// read: its prompt and its LoRA tags.
func rpPart(r Region) string {
	s := r.Prompt
	for _, l := range r.LoRAs {
		s += fmt.Sprintf(" <lora:%s:%s>", a1111LoRAName(l.Name), formatWeight(l.Strength))
	}
	return s
}

func checkForgeCouple(t *testing.T, p Plan) {
	t.Helper()
	fc := p.ForgeCouple
	for _, syntax := range []string{"{ }", "< >", "off"} {
		lines := forgeCoupleLines(fc.Prompt, syntax, fc.Separator)
		if len(lines) != len(fc.Masks)+1 {
			t.Fatalf("Forge Couple (%s) reads %d lines for %d masks + the global line", syntax, len(lines), len(fc.Masks))
		}
		for k, m := range fc.Masks {
			if lines[k+1] != p.Regions[m.Region].Prompt {
				t.Errorf("Forge Couple (%s) line %d %q, want region %d's %q", syntax, k+1, lines[k+1], m.Region, p.Regions[m.Region].Prompt)
			}
		}
		if adv := forgeCoupleLines(fc.Advanced.Prompt, syntax, fc.Separator); len(adv) != len(fc.Advanced.Mapping) {
			t.Errorf("Forge Couple Advanced (%s): %d lines for %d rows", syntax, len(adv), len(fc.Advanced.Mapping))
		}
	}
}

func checkComfyUIText(t *testing.T, p Plan) {
	t.Helper()
	masks := 0
	for id, n := range p.ComfyUI {
		if n.ClassType == "ConditioningSetMask" && strings.HasPrefix(n.Meta.Title, "Set mask") {
			masks++
		}
		for _, key := range []string{"text", "text_g", "text_l"} {
			text, ok := n.Inputs[key].(string)
			if !ok {
				continue
			}
			pieces, embeddings := comfyTokenWeights(text)
			if len(embeddings) > 0 {
				t.Errorf("node %s: ComfyUI would look up embeddings %q in %q", id, embeddings, text)
			}
			for _, w := range pieces {
				if w.weight != 1 {
					t.Errorf("node %s: %q has weight %v in %q", id, w.text, w.weight, text)
				}
			}
		}
	}
	if want := len(p.conditioned()); masks != want {
		t.Errorf("ComfyUI graph masks %d regions, want %d", masks, want)
	}
}

func checkWebUIText(t *testing.T, p Plan) {
	t.Helper()
	for name, body := range map[string]*WebUIRequest{"regional prompter": p.WebUI.RegionalPrompter, "forge couple": p.WebUI.ForgeCouple} {
		for _, prompt := range []string{body.Prompt, body.NegativePrompt} {
			for _, w := range a1111Attention(prompt) {
				if w.weight != 1 && w.weight != -1 {
					t.Errorf("%s: A1111 weighs %q by %v", name, w.text, w.weight)
				}
			}
			for _, tag := range a1111ExtraNetworks(prompt) {
				if !strings.HasPrefix(tag, "<lora:detail:") {
					t.Errorf("%s: A1111 reads extra network %q", name, tag)
				}
			}
			calc := "Attention"
			if name == "regional prompter" {
				calc = p.RegionalPrompter.CalcMode
			}
			text := prompt
			if calc == "Latent" {
				text = strings.ReplaceAll(strings.ReplaceAll(text, "ADDBASE", "BREAK"), "BREAK", "AND")
			}
			parts, weights := a1111Subprompts(regexp.MustCompile(`<(\w+):([^>]+)>`).ReplaceAllString(text, ""))
			for i, w := range weights {
				if w != nil {
					t.Errorf("%s: A1111 reads part %q as weight %v", name, parts[i], *w)
				}
			}
			if calc == "Attention" && len(parts) != 1 {
				t.Errorf("%s: A1111 splits %q at AND into %d", name, prompt, len(parts))
			}
			if strings.ContainsAny(regexp.MustCompile(`\\.`).ReplaceAllString(prompt, ""), "[]|{}") {
				t.Errorf("%s: %q has prompt-editing or alternation syntax", name, prompt)
			}
		}
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range adversarial {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		for i, r := range e {
			if (r == '(' || r == ')') && (i == 0 || e[i-1] != '\\') {
				t.Fatalf("Escape(%q) = %q has an unescaped %q", s, e, r)
			}
			if strings.ContainsRune("[]{}<>|", r) || unicode.IsControl(r) {
				t.Fatalf("Escape(%q) = %q has %q", s, e, r)
			}
		}
		for _, k := range rpKeywords {
			if strings.Contains(e, k) {
				t.Fatalf("Escape(%q) = %q keeps keyword %s", s, e, k)
			}
		}
		if up := strings.ToUpper(e); strings.Contains(up, "ADDP") || strings.Contains(up, "ADDCOL") || strings.Contains(up, "ADDROW") {
			t.Fatalf("Escape(%q) = %q has a keyword Regional Prompter finds upper-cased", s, e)
		}
		if _, w := a1111Subprompts(e); w[0] != nil {
			t.Fatalf("Escape(%q) = %q ends in an A1111 weight", s, e)
		}
		if _, emb := comfyTokenWeights(e); len(emb) > 0 {
			t.Fatalf("Escape(%q) = %q names ComfyUI embeddings %q", s, e, emb)
		}
		if p := plainText(e); strings.ContainsAny(p, "\\") {
			t.Fatalf("plainText(Escape(%q)) = %q keeps a backslash", s, p)
		}
	})
}

func TestEscapeExamples(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a cat", "a cat"},
		{"[dog] and (bird)", `\(dog\) and \(bird\)`},
		{`back\slash \(x\)`, `backslash \(x\)`},
		{"red BREAK blue AND green ADDBASE", "red break blue and green addbase"},
		{"BREAKING news", "breakING news"},
		{"  ", ""},
		{"STANDING HAND BRAND", "STandING Hand BRand"},
		{"a BREAKfast", "a breakfast"},
		{"shADDPot, addcolumn, AddRow", "shadd-pot, add-column, Add-Row"},
		{"{dog:cat}", `\(dog:cat\)`},
		{"<lora:evil:1>", "lora:evil 1"},
		{"(word:1.5) [x]", `\(word 1.5\) \(x\)`},
		{"a|b", "a/b"},
		{"ratio 16:9, time: now", "ratio 16 9, time: now"},
		{"embedding:bad", "embedding bad"},
		{"line\nbreak\ttab", "line break tab"},
		{`\(x\)`, `\(x\)`},
		{"日本語 ü", "日本語 ü"},
	}
	for _, tt := range tests {
		if got := Escape(tt.in); got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
