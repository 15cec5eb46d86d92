// Result<T>: the error-or-value type of kos host libraries.
//
// An Error carries an errno-compatible code (so callers can map it 1:1 to a
// Linux error) and a message that says what was wrong, where, and what to do.
#pragma once

#include <cerrno>
#include <expected>
#include <string>
#include <utility>

namespace kos {

struct Error {
    int code = EINVAL;
    std::string message;
};

template <class T> using Result = std::expected<T, Error>;

inline std::unexpected<Error> make_error(int code, std::string message) {
    return std::unexpected(Error{code, std::move(message)});
}

// Adds context in front of an error's message: "loading bundle x: <message>".
inline Error with_context(Error e, const std::string& context) {
    e.message = context + ": " + e.message;
    return e;
}

namespace detail {
template <class T> T take(std::expected<T, Error>&& r) { return std::move(*r); }
inline void take(std::expected<void, Error>&&) {}
} // namespace detail

} // namespace kos

// KOS_TRY(expr): evaluates a Result; returns its error from the enclosing
// function, or yields its value.
#define KOS_TRY(expr)                                                                    \
    ({                                                                                   \
        auto kos_try_result_ = (expr);                                                          \
        if (!kos_try_result_) [[unlikely]]                                               \
            return std::unexpected(std::move(kos_try_result_.error()));                  \
        ::kos::detail::take(std::move(kos_try_result_));                                 \
    })
