// Linux errno values used by the kernel's native calls (results are negated).
#pragma once

namespace kos::err {
inline constexpr long kPerm = 1;
inline constexpr long kNoEnt = 2;
inline constexpr long kIo = 5;
inline constexpr long kNoMem = 12;
inline constexpr long kAccess = 13;
inline constexpr long kFault = 14;
inline constexpr long kExist = 17;
inline constexpr long kInval = 22;
inline constexpr long kNoSys = 38;
} // namespace kos::err
