// The translation unit that builds cmake/precompiled.h's precompiled header (target lorakit_pch).
