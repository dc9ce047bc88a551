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
// plainly of that shape. It allocates only the strings it keeps.
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
			if end < 0 || !bytes.Equal(b[2:end], root) || len(bytes.TrimLeft(b[end+1:], " \t\n")) != 0 {
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
func openTag(b []byte) (name, rest []byte, ok bool) {
	if len(b) < 3 || b[0] != '<' {
		return nil, nil, false
	}
	end := bytes.IndexByte(b, '>')
	if end < 2 {
		return nil, nil, false
	}
	for _, c := range b[1:end] {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return nil, nil, false
		}
	}
	return b[1:end], b[end+1:], true
}

// elementText reads CDATA sections and plain text up to "</name>". The
// text is a sub-slice of b when it is one piece (the usual case), so it
// costs nothing until set keeps it.
func elementText(b, name []byte) (text, rest []byte, ok bool) {
	pieces := 0
	for {
		var piece []byte
		switch {
		case bytes.HasPrefix(b, cdataOpen):
			end := bytes.Index(b[len(cdataOpen):], cdataClose)
			if end < 0 || !plainText(b[len(cdataOpen):len(cdataOpen)+end]) {
				return nil, nil, false
			}
			piece = b[len(cdataOpen) : len(cdataOpen)+end]
			b = b[len(cdataOpen)+end+len(cdataClose):]
		case len(b) > 0 && b[0] == '<':
			// Only the element's own closing tag may follow: anything else
			// is a nested element, a comment or a different closing tag.
			if len(b) < len(name)+3 || b[1] != '/' || !bytes.Equal(b[2:2+len(name)], name) || b[2+len(name)] != '>' {
				return nil, nil, false
			}
			return text, b[len(name)+3:], true
		default:
			end := bytes.IndexByte(b, '<')
			if end < 0 {
				return nil, nil, false
			}
			piece = b[:end]
			if bytes.ContainsAny(piece, "&>]") || !plainText(piece) {
				return nil, nil, false // entities and oddities: leave them to encoding/xml
			}
			b = b[end:]
		}
		if pieces++; pieces == 1 {
			text = piece
		} else {
			text = append(text[:len(text):len(text)], piece...) // a copy: never write into b
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

// set stores a field the service reads (copying the text: the body's
// buffer is reused); other elements are ignored, as encoding/xml ignores
// them. ok is false for a number it cannot read.
func (in *inbound) set(name, b []byte) bool {
	var err error
	switch string(name) {
	case "ToUserName":
		in.ToUserName = string(b)
	case "FromUserName":
		in.FromUserName = string(b)
	case "CreateTime":
		in.CreateTime, err = parseInt(b)
	case "MsgType":
		in.MsgType = string(b)
	case "Event":
		in.Event = string(b)
	case "EventKey":
		in.EventKey = string(b)
	case "Ticket":
		in.Ticket = string(b)
	case "Content":
		in.Content = string(b)
	case "MsgId":
		in.MsgID, err = parseInt(b)
	case "MsgID":
		in.TemplateMsgID, err = parseInt(b)
	case "Status":
		in.Status = string(b)
	case "Encrypt":
		in.Encrypt = string(b)
	}
	return err == nil
}

func parseInt(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, nil // encoding/xml leaves an empty number at zero
	}
	return strconv.ParseInt(string(b), 10, 64)
}
