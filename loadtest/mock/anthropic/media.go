// The Messages mock's checks of media blocks: images (sniffed against
// their declared media type) and documents, and tool-result content.

package anthropic

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/xroute/xroute/loadtest/mock"
)

func hasItems(raw json.RawMessage) bool {
	var items []json.RawMessage
	return json.Unmarshal(raw, &items) == nil && len(items) > 0
}

var mediaTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

// sniffImage names the media type of image bytes, "" when unknown.
func sniffImage(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png"
	case bytes.HasPrefix(b, []byte("\xff\xd8\xff")):
		return "image/jpeg"
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return "image/gif"
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "image/webp"
	}
	return ""
}

func checkImage(at string, src *source) *apiError {
	if src == nil {
		return invalid(at + ".image.source: Field required")
	}
	switch src.Type {
	case "base64":
		if !mediaTypes[src.MediaType] {
			return invalid(at + ".image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'")
		}
		if src.Data == nil || *src.Data == "" {
			return invalid(at + ".image.source.base64.data: Field required")
		}
		data, err := base64.StdEncoding.DecodeString(*src.Data)
		if err != nil {
			return invalid(at + ".image.source.base64.data: invalid base64 data")
		}
		switch got := sniffImage(data); got {
		case "":
			return invalid(at + ".image.source.base64: Could not process image")
		case src.MediaType:
		default:
			return invalid(at + ".image.source.base64.data: The image was specified using the " + src.MediaType + " media type, but the image appears to be a " + got + " image")
		}
	case "url":
		if !strings.HasPrefix(src.URL, "https://") && !strings.HasPrefix(src.URL, "http://") {
			return invalid(at + ".image.source.url.url: invalid URL")
		}
	case "file":
		if src.FileID == "" {
			return invalid(at + ".image.source.file.file_id: Field required")
		}
	default:
		return invalid(at + ".image.source.type: Input should be 'base64', 'url' or 'file'")
	}
	return nil
}

// checkDocument validates a document block and returns its tokens: the
// words of a text source (and of its title and context), 1 per 64 bytes
// of a PDF.
func checkDocument(at string, b *block) (int, *apiError) {
	src := b.source()
	if src == nil {
		return 0, invalid(at + ".document.source: Field required")
	}
	n := 0
	if b.Title != nil {
		n += mock.CountWords(*b.Title)
	}
	if b.Context != nil {
		n += mock.CountWords(*b.Context)
	}
	switch src.Type {
	case "base64":
		if src.MediaType != "application/pdf" {
			return 0, invalid(at + ".document.source.base64.media_type: Input should be 'application/pdf'")
		}
		if src.Data == nil {
			return 0, invalid(at + ".document.source.base64.data: Field required")
		}
		pdf, err := base64.StdEncoding.DecodeString(*src.Data)
		if err != nil {
			return 0, invalid(at + ".document.source.base64.data: invalid base64 data")
		}
		if !bytes.HasPrefix(pdf, []byte("%PDF-")) {
			return 0, invalid(at + ".document.source.base64: The PDF specified was not valid.")
		}
		return n + 1 + len(pdf)/64, nil
	case "text":
		if src.MediaType != "text/plain" {
			return 0, invalid(at + ".document.source.text.media_type: Input should be 'text/plain'")
		}
		if src.Data == nil {
			return 0, invalid(at + ".document.source.text.data: Field required")
		}
		return n + mock.CountWords(*src.Data), nil
	case "content":
		bs, err := blocks(src.Content)
		if err != nil {
			return 0, invalid(at + ".document.source.content: " + err.Error())
		}
		for k, c := range bs {
			switch c.Type {
			case "text":
				if c.Text == nil {
					return 0, invalid(at + ".document.source.content." + strconv.Itoa(k) + ".text: Field required")
				}
				n += mock.CountWords(*c.Text)
			case "image":
				if e := checkImage(at+".document.source.content."+strconv.Itoa(k), c.source()); e != nil {
					return 0, e
				}
			default:
				return 0, invalid(at + ".document.source.content." + strconv.Itoa(k) + ".type: Input should be 'text' or 'image'")
			}
		}
		return n, nil
	case "url":
		if !strings.HasPrefix(src.URL, "https://") && !strings.HasPrefix(src.URL, "http://") {
			return 0, invalid(at + ".document.source.url.url: invalid URL")
		}
		return n + 1, nil
	case "file":
		if src.FileID == "" {
			return 0, invalid(at + ".document.source.file.file_id: Field required")
		}
		return n + 1, nil
	}
	return 0, invalid(at + ".document.source.type: Input should be 'base64', 'text', 'content', 'url' or 'file'")
}

// resultText is the text of a tool_result content (a string or blocks of
// text, image, document, search_result, tool_reference or browser_state).
func resultText(at string, raw json.RawMessage) (string, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		return "", nil
	}
	bs, err := blocks(raw)
	if err != nil {
		return "", invalid(at + ".content: " + err.Error())
	}
	var parts []string
	for k := range bs {
		b := &bs[k]
		bat := at + ".content." + strconv.Itoa(k)
		switch b.Type {
		case "text":
			if b.Text == nil || *b.Text == "" {
				return "", invalid("messages: text content blocks must be non-empty")
			}
			parts = append(parts, *b.Text)
		case "image":
			if e := checkImage(bat, b.source()); e != nil {
				return "", e
			}
		case "document":
			if _, e := checkDocument(bat, b); e != nil {
				return "", e
			}
		case "search_result", "tool_reference", "browser_state":
		default:
			return "", invalid(bat + ".type: unsupported tool_result content type '" + b.Type + "'")
		}
	}
	return strings.Join(parts, "\n"), nil
}
