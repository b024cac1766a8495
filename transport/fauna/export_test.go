package fauna

// SharedLines is the number of Fauna lines h keeps for sharing.
func SharedLines(h *Handler) int { return h.lines.Len() }
