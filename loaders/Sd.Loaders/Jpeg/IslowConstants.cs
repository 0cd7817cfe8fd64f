namespace Sd.Loaders.Jpeg;

/// <summary>
/// libjpeg's "islow" fixed point, shared by the inverse (<see cref="IslowIdct"/>) and forward (<see cref="IslowFdct"/>)
/// DCTs: 13-bit rotation constants, round(x * 2^13), and 2 extra bits of precision kept between the two passes.
/// Reference: libjpeg's jidctint.c and jfdctint.c (CONST_BITS, PASS1_BITS, FIX_*).
/// </summary>
internal static class IslowConstants
{
    public const int ConstBits = 13;
    public const int Pass1Bits = 2;

    public const int F0_298631336 = 2446;
    public const int F0_390180644 = 3196;
    public const int F0_541196100 = 4433;
    public const int F0_765366865 = 6270;
    public const int F0_899976223 = 7373;
    public const int F1_175875602 = 9633;
    public const int F1_501321110 = 12299;
    public const int F1_847759065 = 15137;
    public const int F1_961570560 = 16069;
    public const int F2_053119869 = 16819;
    public const int F2_562915447 = 20995;
    public const int F3_072711026 = 25172;
}
