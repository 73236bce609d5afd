package core

import (
	"regexp"
	"strings"
)

// TaskName names a PaliGemma task. It is the first word of the task's
// prefix, the name of its endpoint (paliprompt.v1.<name>), the key of its
// output in Outputs and in a reply's "outputs", and the JSON field of a
// request that carries that output ready-made (text from a PaliGemma run
// elsewhere).
type TaskName string

// The tasks PaliGemma 2 mix models are trained on.
const (
	TaskCaption  TaskName = "caption"
	TaskDescribe TaskName = "describe"
	TaskOCR      TaskName = "ocr"
	TaskAnswer   TaskName = "answer"
	TaskQuestion TaskName = "question"
	TaskDetect   TaskName = "detect"
	TaskSegment  TaskName = "segment"
)

// Task declares one PaliGemma task. Everything that differs between tasks
// is here: grounding builds prefixes, token budgets and parsing from it,
// the plugin its endpoints, request fields and headers, the binary its
// -task flag. Adding a task is adding a row to Tasks.
type Task struct {
	Name TaskName
	// Prefix is the prompt template: {name} stands for the argument of
	// that name (Args), e.g. "answer {lang} {question}".
	Prefix string
	// Objects: the output lists objects (<loc> boxes and labels), parsed
	// into Result.Objects.
	Objects bool
	// Masks: each object also carries <seg> codes, decoded into a mask by
	// the mask decoder (vae-oid.npz).
	Masks bool
	// Generate: one of the passes of the generate endpoint (the whole
	// pipeline), in table order.
	Generate bool
	// Endpoint: the micro service serves the task on its own endpoint.
	Endpoint bool
	// MaxNewTokens is the default budget of generated tokens; 0 takes
	// model.max_new_tokens.other.
	MaxNewTokens int
}

// Tasks is the task table, in the order tasks are batched and listed.
var Tasks = []Task{
	{Name: TaskCaption, Prefix: "caption {lang}", Generate: true, Endpoint: true, MaxNewTokens: 64},
	{Name: TaskDescribe, Prefix: "describe {lang}"},
	{Name: TaskOCR, Prefix: "ocr", Endpoint: true},
	{Name: TaskAnswer, Prefix: "answer {lang} {question}", Endpoint: true},
	{Name: TaskQuestion, Prefix: "question {lang} {answer_text}"},
	// A segment object costs 4 + 16 tokens plus its label.
	{Name: TaskDetect, Prefix: "detect {objects}", Objects: true, Generate: true, Endpoint: true, MaxNewTokens: 128},
	{Name: TaskSegment, Prefix: "segment {objects}", Objects: true, Masks: true, Generate: true, Endpoint: true, MaxNewTokens: 256},
}

// OtherTokens is the max_new_tokens key of every task without a budget of
// its own (and of free-form prefixes).
const OtherTokens = "other"

// LookupTask returns the task of a name.
func LookupTask(name TaskName) (Task, bool) {
	for _, t := range Tasks {
		if t.Name == name {
			return t, true
		}
	}
	return Task{}, false
}

// TaskNames lists the names of the tasks for which keep is true (all
// when keep is nil).
func TaskNames(keep func(Task) bool) []TaskName {
	var out []TaskName
	for _, t := range Tasks {
		if keep == nil || keep(t) {
			out = append(out, t.Name)
		}
	}
	return out
}

// ArgKind says how an argument's text is read and checked.
type ArgKind int

const (
	// ArgText is free text, one line.
	ArgText ArgKind = iota
	// ArgLanguage is a language code like "en" or "pt-BR".
	ArgLanguage
	// ArgNames is a list of object names: "cat ; dog".
	ArgNames
)

// Arg is an argument of task prefixes, as a request carries it.
type Arg struct {
	// Name is the placeholder in prefixes ({question}) and the request's
	// JSON field.
	Name string
	// Header carries the argument with a raw image body.
	Header string
	Kind   ArgKind
	// Default applies when a request gives none. A task whose prefix
	// needs an argument without a default fails with ErrBadRequest when
	// it is missing, except for names: without object names the grounder
	// takes them from the caption.
	Default string
	// Doc says what the argument is, for error messages.
	Doc string
}

// The arguments of the task prefixes.
var (
	ArgLang     = Arg{Name: "lang", Header: "Paliprompt-Lang", Kind: ArgLanguage, Default: "en", Doc: "the language of captions and answers"}
	ArgObjects  = Arg{Name: "objects", Header: "Paliprompt-Objects", Kind: ArgNames, Doc: "the objects to detect and segment"}
	ArgQuestion = Arg{Name: "question", Header: "Paliprompt-Question", Doc: "the question to answer about the image"}
	ArgAnswer   = Arg{Name: "answer_text", Header: "Paliprompt-Answer-Text", Doc: "the answer to write a question for"}
)

// Args lists every argument.
var Args = []Arg{ArgLang, ArgObjects, ArgQuestion, ArgAnswer}

var placeholderRe = regexp.MustCompile(`\{([a-z_]+)\}`)

// Args returns the arguments the task's prefix takes, in prefix order.
func (t Task) Args() []Arg {
	var out []Arg
	for _, m := range placeholderRe.FindAllStringSubmatch(t.Prefix, -1) {
		for _, a := range Args {
			if a.Name == m[1] {
				out = append(out, a)
			}
		}
	}
	return out
}

// Served reports whether an endpoint runs the task (its own, or
// generate's): then a request may also carry its output text ready-made,
// in the JSON field of its name.
func (t Task) Served() bool { return t.Endpoint || t.Generate }

// TakesObjects reports whether the task's prefix names objects.
func (t Task) TakesObjects() bool { return strings.Contains(t.Prefix, "{"+ArgObjects.Name+"}") }

// PrefixArgs are the values a prefix is built from.
type PrefixArgs struct {
	Lang    string
	Objects []string
	// Text holds the other arguments by name (question, answer_text).
	Text map[string]string
}

// BuildPrefix fills the task's prefix template. Values must be clean
// already (CleanName, CleanText); a missing argument without a default is
// an ErrBadRequest naming where a request gives it.
func (t Task) BuildPrefix(v PrefixArgs) (string, error) {
	var missing []string
	prefix := placeholderRe.ReplaceAllStringFunc(t.Prefix, func(ph string) string {
		name := ph[1 : len(ph)-1]
		var s string
		switch name {
		case ArgLang.Name:
			s = v.Lang
		case ArgObjects.Name:
			s = strings.Join(v.Objects, " ; ")
		default:
			s = v.Text[name]
		}
		if s == "" {
			for _, a := range Args {
				if a.Name == name && a.Default != "" {
					s = a.Default
				}
			}
		}
		if s == "" {
			missing = append(missing, name)
		}
		return s
	})
	if len(missing) > 0 {
		a, _ := lookupArg(missing[0])
		return "", Errorf(ErrBadRequest, "task %s needs %s (%s): set the JSON field %q or the header %s",
			t.Name, a.Name, a.Doc, a.Name, a.Header)
	}
	return strings.Join(strings.Fields(prefix), " "), nil
}

// MissingArg returns the first argument the task's prefix needs that a
// request must give and args lack: one without a default, other than the
// object names (which the grounder can take from the caption).
func (t Task) MissingArg(args PrefixArgs) (Arg, bool) {
	for _, a := range t.Args() {
		if a.Default == "" && a.Kind == ArgText && args.Text[a.Name] == "" {
			return a, true
		}
	}
	return Arg{}, false
}

func lookupArg(name string) (Arg, bool) {
	for _, a := range Args {
		if a.Name == name {
			return a, true
		}
	}
	return Arg{}, false
}

// TaskOf is the task of a prefix: its first word ("caption en" ->
// caption), if that names a task.
func TaskOf(prefix string) (Task, bool) {
	first, _, _ := strings.Cut(strings.TrimSpace(prefix), " ")
	return LookupTask(TaskName(first))
}

// String is the task's name.
func (n TaskName) String() string { return string(n) }
