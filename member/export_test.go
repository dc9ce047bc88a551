package member

// AfterBatch makes the importer call f after each committed batch; an
// error from f stops the run there, as a crash would.
func (im *Importer) AfterBatch(f func(cursor int) error) { im.afterBatch = f }
