"""Frame sources: files, folders, video files and cameras, and the thread that reads them."""
