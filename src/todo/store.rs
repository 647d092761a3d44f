//! Todos in memory, kept per owner in creation order.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use uuid::Uuid;

/// One todo, as the API shows it (`createdAt` in Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Todo {
    pub id: Uuid,
    pub title: String,
    pub completed: bool,
    /// Unix seconds, like the `iat` and `exp` of the tokens.
    pub created_at: u64,
}

/// A partial update; `None` leaves the field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TodoChanges {
    pub title: Option<String>,
    pub completed: Option<bool>,
}

/// Every user's todos, at most `max_per_user` each. Only the owner's own
/// list is ever looked at, so another user's todo is simply not found.
#[derive(Debug)]
pub struct TodoStore {
    by_owner: RwLock<HashMap<Uuid, Vec<Todo>>>,
    max_per_user: usize,
}

/// A user who already has as many todos as the store keeps per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyTodos {
    pub max_per_user: usize,
}

impl Default for TodoStore {
    /// With the default cap, [`super::defaults::TODO_MAX_PER_USER`].
    fn default() -> Self {
        Self::with_max_per_user(super::defaults::TODO_MAX_PER_USER)
    }
}

impl TodoStore {
    /// An empty store keeping at most `max_per_user` todos per user.
    pub fn with_max_per_user(max_per_user: usize) -> Self {
        Self {
            by_owner: RwLock::default(),
            max_per_user,
        }
    }

    /// How many todos all users have together (for a machine client's report).
    pub fn count_all(&self) -> usize {
        self.read(|todos| todos.values().map(Vec::len).sum())
    }

    /// The owner's todos, oldest first.
    pub fn list(&self, owner: Uuid) -> Vec<Todo> {
        self.read(|todos| todos.get(&owner).cloned().unwrap_or_default())
    }

    /// Adds a todo (not completed) at the end of the owner's list, unless
    /// the owner already has `max_per_user`.
    pub fn create(&self, owner: Uuid, title: String) -> Result<Todo, TooManyTodos> {
        let todo = Todo {
            id: Uuid::new_v4(),
            title,
            completed: false,
            created_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let max_per_user = self.max_per_user;
        self.write(|todos| {
            let list = todos.entry(owner).or_default();
            if list.len() >= max_per_user {
                return Err(TooManyTodos { max_per_user });
            }
            list.push(todo.clone());
            Ok(())
        })?;
        Ok(todo)
    }

    pub fn get(&self, owner: Uuid, id: Uuid) -> Option<Todo> {
        self.read(|todos| todos.get(&owner)?.iter().find(|t| t.id == id).cloned())
    }

    /// Applies `changes`; the updated todo, or `None` if the owner has no such todo.
    pub fn update(&self, owner: Uuid, id: Uuid, changes: TodoChanges) -> Option<Todo> {
        self.write(|todos| {
            let todo = todos.get_mut(&owner)?.iter_mut().find(|t| t.id == id)?;
            if let Some(title) = changes.title {
                todo.title = title;
            }
            if let Some(completed) = changes.completed {
                todo.completed = completed;
            }
            Some(todo.clone())
        })
    }

    /// Removes every todo of the owner; how many.
    pub fn delete_all(&self, owner: Uuid) -> usize {
        self.write(|todos| todos.remove(&owner).map_or(0, |list| list.len()))
    }

    /// Whether the owner had such a todo.
    pub fn delete(&self, owner: Uuid, id: Uuid) -> bool {
        self.write(|todos| {
            let Some(list) = todos.get_mut(&owner) else {
                return false;
            };
            let before = list.len();
            list.retain(|t| t.id != id);
            let deleted = list.len() != before;
            if list.is_empty() {
                todos.remove(&owner);
            }
            deleted
        })
    }

    // The map stays consistent even if a holder panicked (every change is a
    // single step), so a poisoned lock is used as it is.
    fn read<T>(&self, f: impl FnOnce(&HashMap<Uuid, Vec<Todo>>) -> T) -> T {
        f(&self.by_owner.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write<T>(&self, f: impl FnOnce(&mut HashMap<Uuid, Vec<Todo>>) -> T) -> T {
        f(&mut self
            .by_owner
            .write()
            .unwrap_or_else(PoisonError::into_inner))
    }
}
