//! SMH and COS error codes (smh-api.md §8), one constant each, shared by
//! the client (matching replies) and `smhfs serve` (writing them).

macro_rules! codes {
    ($($name:ident = $code:literal,)*) => {
        $(#[doc = concat!("`", $code, "`")] pub const $name: &str = $code;)*
        /// Every code above.
        pub const ALL: &[&str] = &[$($name),*];
    };
}

codes! {
    ACCESS_DENIED = "AccessDenied",
    ACCESS_TOKEN_NOT_MATCH_LIBRARY = "AccessTokenNotMatchLibrary",
    ACCESS_TOKEN_NOT_MATCH_SPACE = "AccessTokenNotMatchSpace",
    BAD_CRC64 = "BadCrc64",
    BAD_REQUEST = "BadRequest",
    CIRCLE_SYMLINK = "CircleSymlink",
    CONFIRM_KEY_NOT_FOUND = "ConfirmKeyNotFound",
    DIRECTORY_NAME_LENGTH_EXCEED = "DirectoryNameLengthExceed",
    DIRECTORY_NOT_FOUND = "DirectoryNotFound",
    EMPTY_ACCESS_TOKEN = "EmptyAccessToken",
    EMPTY_FILE_NAME = "EmptyFileName",
    EMPTY_LIBRARY_ID_OR_SECRET = "EmptyLibraryIdOrSecret",
    EMPTY_PATH = "EmptyPath",
    FILE_NAME_LENGTH_EXCEED = "FileNameLengthExceed",
    FILE_NOT_FOUND = "FileNotFound",
    FILE_REMOVED_BY_QUOTA = "FileRemovedByQuota",
    FILE_TYPE_NOT_MATCHED = "FileTypeNotMatched",
    FUNCTION_NOT_ENABLED = "FunctionNotEnabled",
    ILLEGAL_FILE_NAME = "IllegalFileName",
    INCOMPLETE_BODY = "IncompleteBody",
    INJECTED_FAULT = "InjectedFault",
    INTERNAL_SERVER_ERROR = "InternalServerError",
    INVALID_ACCESS_TOKEN = "InvalidAccessToken",
    INVALID_ARGUMENT = "InvalidArgument",
    INVALID_CONFLICT_RESOLUTION_STRATEGY = "InvalidConflictResolutionStrategy",
    INVALID_DESTINATION_PATH = "InvalidDestinationPath",
    INVALID_FILE_PATH = "InvalidFilePath",
    INVALID_RANGE = "InvalidRange",
    INVALID_SOURCE_DIRECTORY = "InvalidSourceDirectory",
    INVALID_SOURCE_FILE = "InvalidSourceFile",
    LIBRARY_NOT_FOUND = "LibraryNotFound",
    LIBRARY_QUOTA_LIMIT_REACHED = "LibraryQuotaLimitReached",
    MARKER_NOT_FOUND = "MarkerNotFound",
    METHOD_NOT_ALLOWED = "MethodNotAllowed",
    MULTIPART_UPLOAD_INCOMPLETE = "MultipartUploadIncomplete",
    MULTIPART_UPLOAD_PART_TOO_SMALL = "MultipartUploadPartTooSmall",
    NO_ENOUGH_REMAINING_QUOTA = "NoEnoughRemainingQuota",
    NO_PERMISSION = "NoPermission",
    NO_QUOTA = "NoQuota",
    NO_SUCH_KEY = "NoSuchKey",
    NO_SUCH_UPLOAD = "NoSuchUpload",
    NOT_MULTI_SPACE_LIBRARY = "NotMultiSpaceLibrary",
    PARAM_INVALID = "ParamInvalid",
    PATH_CONFLICT = "PathConflict",
    PATH_NOT_FOUND = "PathNotFound",
    QUOTA_LIMIT_REACHED = "QuotaLimitReached",
    RATE_LIMIT_EXCEEDED = "RateLimitExceeded",
    READ_FORBIDDEN = "ReadForbidden",
    READ_REQUEST_TIMEOUT = "ReadRequestTimeout",
    RECYCLED_ITEM_NOT_FOUND = "RecycledItemNotFound",
    RENAME_TOO_MANY_TIMES = "RenameTooManyTimes",
    ROOT_DIRECTORY_NOT_ALLOWED = "RootDirectoryNotAllowed",
    ROUTE_NOT_FOUND = "RouteNotFound",
    SAME_NAME_DIRECTORY_OR_FILE_EXISTS = "SameNameDirectoryOrFileExists",
    SENSITIVE_CONTENT_RECOGNIZED = "SensitiveContentRecognized",
    SERVER_OVERLOADED = "ServerOverloaded",
    SOURCE_DIRECTORY_IS_PARENT_OF_DESTINATION = "SourceDirectoryIsParentOfDestination",
    SOURCE_DIRECTORY_NOT_FOUND = "SourceDirectoryNotFound",
    SOURCE_FILE_NOT_FOUND = "SourceFileNotFound",
    SPACE_ALREADY_EXISTS = "SpaceAlreadyExists",
    SPACE_ID_INVALID = "SpaceIdInvalid",
    SPACE_NOT_EMPTY = "SpaceNotEmpty",
    SPACE_NOT_FOUND = "SpaceNotFound",
    SYMLINK_DEPTH_LIMIT_EXCEEDED = "SymlinkDepthLimitExceeded",
    SYMLINK_TO_DIRECTORY_NOT_ALLOWED = "SymlinkToDirectoryNotAllowed",
    TASK_NOT_FOUND = "TaskNotFound",
    UPLOAD_COMPLETE = "UploadComplete",
    UPLOAD_INCOMPLETE = "UploadIncomplete",
    UPLOAD_NOT_BELONG_YOU = "UploadNotBelongYou",
    UPLOAD_NOT_FOUND = "UploadNotFound",
    USER_ID_LENGTH_EXCEED = "UserIdLengthExceed",
    WRITE_FORBIDDEN = "WriteForbidden",
    WRONG_LIBRARY_ID_OR_SECRET = "WrongLibraryIdOrSecret",
}

/// What `smhfs serve` answers (404) for a change-feed cursor it cannot
/// continue from (expired or unknown): the client starts over with a new
/// cursor. smh-api.md §4.15 leaves the real server's code open.
pub const DELTA_CURSOR_LOST: &str = MARKER_NOT_FOUND;

#[cfg(test)]
mod tests {
    #[test]
    fn codes_are_distinct() {
        let mut v = super::ALL.to_vec();
        v.sort();
        v.dedup();
        assert_eq!(v.len(), super::ALL.len());
    }
}
