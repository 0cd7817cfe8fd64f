using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Sd.Kernels.Elementwise;

/// <summary>
/// The float operations of one vector width, so that a vector loop is written once, generic over (TVec, a struct
/// implementing this), instead of once per width. Each member is the one intrinsic the hand-written loop would use
/// and is inlined, so a specialized loop compiles to the same instructions in the same order (same rounding) as a
/// loop written against Vector256 or Vector512 directly. .NET 10 keeps ISimdVector internal, hence this interface.
/// </summary>
internal unsafe interface IF32Vector<TVec>
    where TVec : struct
{
    /// <summary>
    /// Lanes. Loops use V.Count inline rather than copying it to a local: inlined, it is a constant as the JIT imports
    /// the loop, so address modes come out as they did for the const W it replaces (a local costs a lea per vector).
    /// </summary>
    static abstract int Count { get; }

    static abstract TVec Zero { get; }

    static abstract TVec Create(float value);

    static abstract TVec Load(float* source);

    static abstract void Store(TVec value, float* destination);

    /// <summary>A streaming store to a vector-aligned destination: it bypasses the caches (no read for ownership).</summary>
    static abstract void StoreNonTemporal(TVec value, float* destination);

    static abstract TVec Add(TVec a, TVec b);

    static abstract TVec Subtract(TVec a, TVec b);

    static abstract TVec Multiply(TVec a, TVec b);

    static abstract TVec Divide(TVec a, TVec b);

    /// <summary>
    /// The hardware max (one MAXPS): <paramref name="b"/> where either lane is NaN. Vector512.Max's IEEE semantics
    /// (NaN-propagating, -0 below +0) compile to VRANGEPS and two VFIXUPIMMPS, a three-instruction dependency chain
    /// that made attention's running row max cost a sixth of a 4096-key flash attention.
    /// </summary>
    static abstract TVec Max(TVec a, TVec b);

    static abstract TVec And(TVec a, TVec b);

    /// <summary>Whether any lane of <paramref name="a"/> is greater than that of <paramref name="b"/> (false for NaN lanes).</summary>
    static abstract bool AnyGreaterThan(TVec a, TVec b);

    /// <summary>All-ones lanes where <paramref name="a"/> &gt; <paramref name="b"/> (not for NaN), zero elsewhere.</summary>
    static abstract TVec GreaterThan(TVec a, TVec b);

    /// <summary>
    /// Lanes of <paramref name="ifTrue"/> where <paramref name="mask"/> (all-ones or zero lanes, such as
    /// <see cref="Mask"/>'s) is set, else those of <paramref name="ifFalse"/>.
    /// </summary>
    static abstract TVec ConditionalSelect(TVec mask, TVec ifTrue, TVec ifFalse);

    /// <summary>a * b + c, rounded once.</summary>
    static abstract TVec FusedMultiplyAdd(TVec a, TVec b, TVec c);

    static abstract float Sum(TVec value);

    /// <summary>The <see cref="MaskedTail"/> operations at this width.</summary>
    static abstract TVec Mask(nint count);

    static abstract TVec MaskedLoad(float* source, TVec mask);

    static abstract void MaskedStore(float* destination, TVec mask, TVec value);

    /// <summary>The activation's overload for this width (IActivation has one per vector type).</summary>
    static abstract TVec Apply<TAct>(TVec x)
        where TAct : IActivation;
}

internal readonly unsafe struct F32x8 : IF32Vector<Vector256<float>>
{
    public static int Count => Vector256<float>.Count;

    public static Vector256<float> Zero
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Vector256<float>.Zero;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Create(float value) => Vector256.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load(float* source) => Vector256.Load(source);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector256<float> value, float* destination) => value.Store(destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreNonTemporal(Vector256<float> value, float* destination) => value.StoreAlignedNonTemporal(destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Subtract(Vector256<float> a, Vector256<float> b) => a - b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Divide(Vector256<float> a, Vector256<float> b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.MaxNative(a, b);

    public static Vector256<float> GreaterThan(Vector256<float> a, Vector256<float> b) => Vector256.GreaterThan(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> And(Vector256<float> a, Vector256<float> b) => a & b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool AnyGreaterThan(Vector256<float> a, Vector256<float> b) => Vector256.GreaterThanAny(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ConditionalSelect(
        Vector256<float> mask, Vector256<float> ifTrue, Vector256<float> ifFalse) =>
        Vector256.ConditionalSelect(mask, ifTrue, ifFalse);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> FusedMultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) =>
        Vector256.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector256<float> value) => Vector256.Sum(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Mask(nint count) => MaskedTail.Mask256(count);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> MaskedLoad(float* source, Vector256<float> mask) => MaskedTail.Load(source, mask);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void MaskedStore(float* destination, Vector256<float> mask, Vector256<float> value) =>
        MaskedTail.Store(destination, mask, value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Apply<TAct>(Vector256<float> x)
        where TAct : IActivation => TAct.Apply(x);
}

internal readonly unsafe struct F32x16 : IF32Vector<Vector512<float>>
{
    public static int Count => Vector512<float>.Count;

    public static Vector512<float> Zero
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Vector512<float>.Zero;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Create(float value) => Vector512.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(float* source) => Vector512.Load(source);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector512<float> value, float* destination) => value.Store(destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreNonTemporal(Vector512<float> value, float* destination) => value.StoreAlignedNonTemporal(destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Subtract(Vector512<float> a, Vector512<float> b) => a - b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => a * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Divide(Vector512<float> a, Vector512<float> b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Max(Vector512<float> a, Vector512<float> b) => Vector512.MaxNative(a, b);

    public static Vector512<float> GreaterThan(Vector512<float> a, Vector512<float> b) => Vector512.GreaterThan(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> And(Vector512<float> a, Vector512<float> b) => a & b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool AnyGreaterThan(Vector512<float> a, Vector512<float> b) => Vector512.GreaterThanAny(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> ConditionalSelect(
        Vector512<float> mask, Vector512<float> ifTrue, Vector512<float> ifFalse) =>
        Vector512.ConditionalSelect(mask, ifTrue, ifFalse);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> FusedMultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) =>
        Vector512.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector512<float> value) => Vector512.Sum(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Mask(nint count) => MaskedTail.Mask512(count);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> MaskedLoad(float* source, Vector512<float> mask) => MaskedTail.Load(source, mask);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void MaskedStore(float* destination, Vector512<float> mask, Vector512<float> value) =>
        MaskedTail.Store(destination, mask, value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Apply<TAct>(Vector512<float> x)
        where TAct : IActivation => TAct.Apply(x);
}
