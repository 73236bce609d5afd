package core

import (
	"errors"
	"strings"
	"testing"
)

// TestTaskTable checks the table's own rules: every prefix starts with
// its task's name and names only declared arguments, and the JSON fields
// a request can carry (arguments, outputs of served tasks) are distinct.
func TestTaskTable(t *testing.T) {
	fields := map[string]string{}
	claim := func(name, what string) {
		if prev, ok := fields[name]; ok {
			t.Errorf("JSON field %q is both %s and %s", name, prev, what)
		}
		fields[name] = what
	}
	for _, a := range Args {
		claim(a.Name, "argument")
		if !strings.HasPrefix(a.Header, "Paliprompt-") {
			t.Errorf("argument %s: header %q", a.Name, a.Header)
		}
	}
	for _, task := range Tasks {
		if first, _, _ := strings.Cut(task.Prefix, " "); first != string(task.Name) {
			t.Errorf("task %s: prefix %q does not start with its name", task.Name, task.Prefix)
		}
		if n := strings.Count(task.Prefix, "{"); n != len(task.Args()) {
			t.Errorf("task %s: prefix %q has %d placeholders, %d declared arguments", task.Name, task.Prefix, n, len(task.Args()))
		}
		if task.Masks && !task.Objects {
			t.Errorf("task %s has masks but no objects", task.Name)
		}
		if task.Served() {
			claim(string(task.Name), "task output")
		}
		if got, ok := TaskOf(task.Prefix); !ok || got.Name != task.Name {
			t.Errorf("TaskOf(%q) = %v, %v", task.Prefix, got.Name, ok)
		}
	}
}

func TestBuildPrefix(t *testing.T) {
	answer, _ := LookupTask(TaskAnswer)
	detect, _ := LookupTask(TaskDetect)
	caption, _ := LookupTask(TaskCaption)
	tests := []struct {
		task Task
		args PrefixArgs
		want string
		err  string
	}{
		{caption, PrefixArgs{}, "caption en", ""},
		{caption, PrefixArgs{Lang: "de"}, "caption de", ""},
		{detect, PrefixArgs{Objects: []string{"cat", "red ball"}}, "detect cat ; red ball", ""},
		{detect, PrefixArgs{}, "", "needs objects"},
		{answer, PrefixArgs{Text: map[string]string{"question": "what is it?"}}, "answer en what is it?", ""},
		{answer, PrefixArgs{}, "", "Paliprompt-Question"},
	}
	for _, tt := range tests {
		got, err := tt.task.BuildPrefix(tt.args)
		if tt.err != "" {
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s %+v: error %v, want a bad request naming %q", tt.task.Name, tt.args, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s %+v = %q, %v; want %q", tt.task.Name, tt.args, got, err, tt.want)
		}
	}
	if a, missing := answer.MissingArg(PrefixArgs{}); !missing || a.Name != "question" {
		t.Errorf("MissingArg = %v, %v", a, missing)
	}
	if _, missing := detect.MissingArg(PrefixArgs{}); missing {
		t.Error("detect without objects needs nothing: the caption names them")
	}
}
