package fauna

// SharedLines is the number of Fauna lines h keeps for sharing.
func SharedLines(h *Handler) int { return h.lines.Len() }

// SharedV10Lines is the number of v10 lines h keeps for sharing.
func SharedV10Lines(h *Handler) int { return h.lines10.Len() }
