//! The reference: a flat directory of files as POSIX promises it, with
//! open handles. Files are objects (an inode's content) that names point
//! at, so an unlinked or renamed-over file lives on for its open handles.

use std::collections::BTreeMap;

/// A file object of the model (what an inode is to the core).
pub type FileId = usize;

#[derive(Debug, Clone)]
pub struct Handle {
    pub file: FileId,
    pub writable: bool,
}

#[derive(Debug, Default)]
pub struct Model {
    /// Visible names.
    pub names: BTreeMap<String, FileId>,
    /// Content of every file object still named or open.
    pub contents: BTreeMap<FileId, Vec<u8>>,
    /// Open handles, in the order they were opened.
    pub handles: Vec<Handle>,
    next_file: FileId,
}

impl Model {
    pub fn content_of(&self, name: &str) -> Option<&Vec<u8>> {
        self.names.get(name).map(|f| &self.contents[f])
    }

    /// The name of a file object, if it still has one.
    pub fn name_of(&self, file: FileId) -> Option<&str> {
        self.names
            .iter()
            .find(|(_, f)| **f == file)
            .map(|(n, _)| n.as_str())
    }

    /// Handles open on a file object.
    pub fn open_count(&self, file: FileId) -> usize {
        self.handles.iter().filter(|h| h.file == file).count()
    }

    /// open(O_CREAT|O_TRUNC): an existing file is emptied (for its other
    /// handles too), a missing one is made.
    pub fn create(&mut self, name: &str) -> usize {
        let file = match self.names.get(name) {
            Some(f) => *f,
            None => {
                let f = self.next_file;
                self.next_file += 1;
                self.names.insert(name.to_string(), f);
                f
            }
        };
        self.contents.insert(file, Vec::new());
        self.open_handle(file, true)
    }

    /// A new handle on a file object; its index.
    pub fn open_handle(&mut self, file: FileId, writable: bool) -> usize {
        self.handles.push(Handle { file, writable });
        self.handles.len() - 1
    }

    pub fn write(&mut self, file: FileId, offset: u64, data: &[u8]) {
        let c = self.contents.get_mut(&file).expect("file content");
        let end = offset as usize + data.len();
        if c.len() < end {
            c.resize(end, 0);
        }
        c[offset as usize..end].copy_from_slice(data);
    }

    pub fn truncate(&mut self, file: FileId, size: u64) {
        self.contents
            .get_mut(&file)
            .expect("file content")
            .resize(size as usize, 0);
    }

    /// rename(2) of a file onto a free or existing name (replaced).
    pub fn rename(&mut self, from: &str, to: &str) {
        if from == to {
            return;
        }
        let file = self.names.remove(from).expect("source exists");
        if let Some(old) = self.names.insert(to.to_string(), file) {
            self.forget_if_unused(old);
        }
    }

    pub fn unlink(&mut self, name: &str) {
        let file = self.names.remove(name).expect("name exists");
        self.forget_if_unused(file);
    }

    /// close(2) of the handle at `index`.
    pub fn close(&mut self, index: usize) -> Handle {
        let h = self.handles.remove(index);
        self.forget_if_unused(h.file);
        h
    }

    fn forget_if_unused(&mut self, file: FileId) {
        let named = self.names.values().any(|f| *f == file);
        if !named && self.open_count(file) == 0 {
            self.contents.remove(&file);
        }
    }

    /// The visible files and their contents.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        self.names
            .iter()
            .map(|(n, f)| (n.clone(), self.contents[f].clone()))
            .collect()
    }
}
