package awsproto

import (
	"encoding/xml"
	"io"
	"net/http"
	"strings"
)

func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// writeQueryResult writes a Query result as AWS does:
// <ActionResponse xmlns><ActionResult>result</ActionResult>
// <ResponseMetadata><RequestId/></ResponseMetadata></ActionResponse>.
// action has been checked to be a plain name.
func writeQueryResult(w io.Writer, ns, action string, result []byte, requestID string) {
	io.WriteString(w, "<"+action+"Response"+xmlns(ns)+">")
	io.WriteString(w, "<"+action+"Result>")
	w.Write(result)
	io.WriteString(w, "</"+action+"Result>")
	io.WriteString(w, "<ResponseMetadata><RequestId>"+xmlText(requestID)+"</RequestId></ResponseMetadata>")
	io.WriteString(w, "</"+action+"Response>")
}

// writeXMLError writes a Query error as AWS does:
// <ErrorResponse xmlns><Error><Type>Sender|Receiver</Type><Code/><Message/>
// </Error><RequestId/></ErrorResponse>.
func writeXMLError(w http.ResponseWriter, ns string, status int, code, msg, requestID string) {
	fault := "Sender"
	if status >= 500 {
		fault = "Receiver"
	}
	w.Header().Set("Content-Type", Query.contentType())
	w.Header().Set("X-Amzn-RequestId", requestID)
	w.WriteHeader(status)
	io.WriteString(w, "<ErrorResponse"+xmlns(ns)+"><Error><Type>"+fault+"</Type><Code>"+xmlText(code)+"</Code><Message>"+
		xmlText(msg)+"</Message></Error><RequestId>"+xmlText(requestID)+"</RequestId></ErrorResponse>")
}

func xmlns(ns string) string {
	if ns == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString(` xmlns="`)
	_ = xml.EscapeText(&b, []byte(ns))
	b.WriteString(`"`)
	return b.String()
}
