package wechat

import (
	"bytes"
	"encoding/xml"
	"strconv"
	"unicode/utf8"
)

// parseInbound reads a pushed message. WeChat's push XML is flat: a root
// <xml> holding simple elements whose text is CDATA or plain digits. The
// fast path below reads exactly that shape without encoding/xml, which cost
// more than half of a callback's CPU (profiled under load); anything else
// (entities, comments, attributes, nested elements, self-closing tags, bad
// numbers) goes to encoding/xml, so the result is always what encoding/xml
// would give (FuzzParseInbound checks this).
func parseInbound(b []byte) (inbound, error) {
	if in, ok := scanFlat(b); ok {
		return in, nil
	}
	var in inbound
	err := xml.Unmarshal(b, &in)
	return in, err
}

var (
	cdataOpen  = []byte("<![CDATA[")
	cdataClose = []byte("]]>")
)

// scanFlat parses the flat shape; ok is false whenever the input is not
// plainly of that shape.
func scanFlat(b []byte) (in inbound, ok bool) {
	b = bytes.TrimLeft(b, " \t\n")
	root, rest, ok := openTag(b)
	if !ok {
		return inbound{}, false
	}
	b = rest
	for {
		b = bytes.TrimLeft(b, " \t\n")
		if bytes.HasPrefix(b, []byte("</")) {
			// Closing tag of the root, then only whitespace.
			end := bytes.IndexByte(b, '>')
			if end < 0 || string(b[2:end]) != root || len(bytes.TrimLeft(b[end+1:], " \t\n")) != 0 {
				return inbound{}, false
			}
			return in, true
		}
		name, rest, ok := openTag(b)
		if !ok {
			return inbound{}, false
		}
		text, rest, ok := elementText(rest, name)
		if !ok {
			return inbound{}, false
		}
		if !in.set(name, text) {
			return inbound{}, false
		}
		b = rest
	}
}

// openTag reads "<Name>" with a plain name and no attributes.
func openTag(b []byte) (name string, rest []byte, ok bool) {
	if len(b) < 3 || b[0] != '<' {
		return "", nil, false
	}
	end := bytes.IndexByte(b, '>')
	if end < 2 {
		return "", nil, false
	}
	for _, c := range b[1:end] {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return "", nil, false
		}
	}
	return string(b[1:end]), b[end+1:], true
}

// elementText reads CDATA sections and plain text up to "</name>".
func elementText(b []byte, name string) (string, []byte, bool) {
	var text []byte
	for {
		switch {
		case bytes.HasPrefix(b, cdataOpen):
			end := bytes.Index(b[len(cdataOpen):], cdataClose)
			if end < 0 || !plainText(b[len(cdataOpen):len(cdataOpen)+end]) {
				return "", nil, false
			}
			text = append(text, b[len(cdataOpen):len(cdataOpen)+end]...)
			b = b[len(cdataOpen)+end+len(cdataClose):]
		case len(b) > 0 && b[0] == '<':
			if !bytes.HasPrefix(b[1:], []byte("/"+name+">")) {
				return "", nil, false // nested element, comment, or a different closing tag
			}
			return string(text), b[len(name)+3:], true
		default:
			end := bytes.IndexByte(b, '<')
			if end < 0 {
				return "", nil, false
			}
			chunk := b[:end]
			if bytes.ContainsAny(chunk, "&>]") || !plainText(chunk) {
				return "", nil, false // entities and oddities: leave them to encoding/xml
			}
			text = append(text, chunk...)
			b = b[end:]
		}
	}
}

// plainText reports whether b holds no character encoding/xml would
// rewrite or refuse: invalid UTF-8, carriage returns (line ends are
// normalised), other control characters, and U+FFFE/U+FFFF.
func plainText(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' {
			return false
		}
	}
	return utf8.Valid(b) && !bytes.Contains(b, []byte("\xEF\xBF\xBE")) && !bytes.Contains(b, []byte("\xEF\xBF\xBF"))
}

// set stores a field the service reads; other elements are ignored, as
// encoding/xml ignores them. ok is false for a number it cannot read.
func (in *inbound) set(name, text string) bool {
	var err error
	switch name {
	case "ToUserName":
		in.ToUserName = text
	case "FromUserName":
		in.FromUserName = text
	case "CreateTime":
		in.CreateTime, err = parseInt(text)
	case "MsgType":
		in.MsgType = text
	case "Event":
		in.Event = text
	case "EventKey":
		in.EventKey = text
	case "Ticket":
		in.Ticket = text
	case "Content":
		in.Content = text
	case "MsgId":
		in.MsgID, err = parseInt(text)
	case "MsgID":
		in.TemplateMsgID, err = parseInt(text)
	case "Status":
		in.Status = text
	case "Encrypt":
		in.Encrypt = text
	}
	return err == nil
}

func parseInt(s string) (int64, error) {
	if s == "" {
		return 0, nil // encoding/xml leaves an empty number at zero
	}
	return strconv.ParseInt(s, 10, 64)
}
