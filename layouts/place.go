package layouts

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"paliprompt/core"
)

// Placement asks for spatial control of the generated scene: objects
// moved or resized on the target canvas, and the whole layout mirrored.
//
// In a JSON request it is {"place": {"<label or index>": <where>, ...},
// "mirror": true}, where <where> is a place name or a normalized box
// [x0, y0, x1, y1]; as a header it is ParsePlacement's string.
type Placement struct {
	// Mirror flips the whole layout horizontally before any move.
	Mirror bool `json:"mirror,omitempty"`
	// Moves are applied in order; a later move of the same object wins.
	Moves Moves `json:"place,omitempty"`
}

// Move places one object (or the first object with a label).
type Move struct {
	// Key names the object: a label (case-insensitive) or an index into
	// Layout.Objects, as written.
	Key string `json:"key"`
	// Place is a canonical place name (see PlaceNames); empty with Box.
	Place string `json:"place,omitempty"`
	// Box is a normalized target box; nil with Place.
	Box *core.Box `json:"box,omitempty"`
}

// where describes the move's target for messages.
func (m Move) where() string {
	if m.Box != nil {
		return m.Box.String()
	}
	return m.Place
}

// Moves is the "place" object of a JSON request. It decodes from
// {"<key>": "<place name>" | [x0, y0, x1, y1], ...} keeping the keys'
// order, and encodes back to the same form.
type Moves []Move

// UnmarshalJSON reads the "place" object in order.
func (ms *Moves) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return core.Errorf(core.ErrBadRequest, "place must be an object {\"<label or index>\": \"<place>\" | [x0, y0, x1, y1]}")
	}
	var out Moves
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return core.Errorf(core.ErrBadRequest, "place: %v", err)
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return core.Errorf(core.ErrBadRequest, "place %q: %v", key, err)
		}
		m, err := moveFromJSON(key, raw)
		if err != nil {
			return err
		}
		out = append(out, m)
	}
	*ms = out
	return nil
}

// MarshalJSON writes the moves as the "place" object, in order.
func (ms Moves) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.Key)
		var v []byte
		if m.Box != nil {
			v, _ = json.Marshal(*m.Box)
		} else {
			v, _ = json.Marshal(m.Place)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func moveFromJSON(key string, raw json.RawMessage) (Move, error) {
	key = strings.TrimSpace(key)
	if key == "" {
		return Move{}, core.Errorf(core.ErrBadRequest, "place has an empty key")
	}
	var name string
	if err := json.Unmarshal(raw, &name); err == nil {
		return moveTo(key, name)
	}
	var box core.Box
	if err := json.Unmarshal(raw, &box); err != nil {
		return Move{}, core.Errorf(core.ErrBadRequest, "place %q: want a place name or [x0, y0, x1, y1]: %v", key, err)
	}
	return moveToBox(key, box)
}

// moveTo builds a move to a named place.
func moveTo(key, name string) (Move, error) {
	place, ok := canonicalPlace(name)
	if !ok {
		return Move{}, core.Errorf(core.ErrBadRequest, "place %q for %q is not a place name (use one of: %s; or a box x0,y0,x1,y1)",
			name, key, strings.Join(PlaceNames(), ", "))
	}
	return Move{Key: key, Place: place}, nil
}

// moveToBox builds a move to a normalized box.
func moveToBox(key string, b core.Box) (Move, error) {
	if problem := b.NormalizedProblem(); problem != "" {
		return Move{}, core.Errorf(core.ErrBadRequest, "place box %v for %q %s", b, key, problem)
	}
	return Move{Key: key, Box: &b}, nil
}

// ParsePlacement parses the Paliprompt-Place header:
//
//	character=top-left; dog=on the right; 2=[0.1, 0.5, 0.4, 1]; mirror
//
// Items are separated by ";". Each is <label or index>=<where>, where
// <where> is a place name (PlaceNames, case-insensitive) or a normalized
// box "x0,y0,x1,y1" (brackets optional); the bare word "mirror" mirrors
// the layout. Empty items are ignored. Errors wrap core.ErrBadRequest and name
// the item at fault.
func ParsePlacement(s string) (Placement, error) {
	var p Placement
	for _, item := range strings.Split(s, ";") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		key, value, ok := strings.Cut(item, "=")
		if !ok {
			if strings.EqualFold(item, "mirror") {
				p.Mirror = true
				continue
			}
			return Placement{}, core.Errorf(core.ErrBadRequest, "placement item %q is not <label or index>=<place> or \"mirror\"", item)
		}
		key, value = strings.Join(strings.Fields(key), " "), strings.TrimSpace(value)
		if key == "" {
			return Placement{}, core.Errorf(core.ErrBadRequest, "placement item %q has no label or index before '='", item)
		}
		m, err := parseWhere(key, value)
		if err != nil {
			return Placement{}, err
		}
		p.Moves = append(p.Moves, m)
	}
	return p, nil
}

// parseWhere reads the right side of a header item.
func parseWhere(key, value string) (Move, error) {
	trimmed := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(value, "["), "]"))
	parts := strings.Split(trimmed, ",")
	if len(parts) == 1 {
		return moveTo(key, value)
	}
	if len(parts) != 4 {
		return Move{}, core.Errorf(core.ErrBadRequest, "place box %q for %q needs 4 numbers x0,y0,x1,y1", value, key)
	}
	var v [4]float64
	for i, s := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return Move{}, core.Errorf(core.ErrBadRequest, "place box %q for %q: %q is not a number", value, key, strings.TrimSpace(s))
		}
		v[i] = f
	}
	return moveToBox(key, core.Box{X0: v[0], Y0: v[1], X1: v[2], Y1: v[3]})
}

// validate checks a Placement built by hand (not parsed).
func (p Placement) validate() error {
	for _, m := range p.Moves {
		if strings.TrimSpace(m.Key) == "" {
			return core.Errorf(core.ErrBadRequest, "a placement move has no label or index")
		}
		switch {
		case m.Box != nil && m.Place != "":
			return core.Errorf(core.ErrBadRequest, "placement of %q has both a place and a box", m.Key)
		case m.Box != nil:
			if _, err := moveToBox(m.Key, *m.Box); err != nil {
				return err
			}
		default:
			if _, ok := canonicalPlace(m.Place); !ok {
				_, err := moveTo(m.Key, m.Place)
				return err
			}
		}
	}
	return nil
}
