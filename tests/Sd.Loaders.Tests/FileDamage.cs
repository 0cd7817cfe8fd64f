namespace Sd.Loaders.Tests;

/// <summary>Seeded random damage to a valid file's bytes, for the tests that every reader meets it with a typed error.</summary>
internal static class FileDamage
{
    /// <summary>One to five changes: a byte replaced, a bit flipped, the rest cut off, a byte inserted or deleted.</summary>
    internal static byte[] Damage(byte[] valid, Random random)
    {
        var bytes = new List<byte>(valid);
        int changes = random.Next(1, 6);
        for (int i = 0; i < changes && bytes.Count > 0; i++)
        {
            int at = random.Next(bytes.Count);
            switch (random.Next(5))
            {
                case 0: bytes[at] = (byte)random.Next(256); break;
                case 1: bytes[at] ^= (byte)(1 << random.Next(8)); break;
                case 2: bytes.RemoveRange(at, bytes.Count - at); break;
                case 3: bytes.Insert(at, (byte)random.Next(256)); break;
                default: bytes.RemoveAt(at); break;
            }
        }
        return [.. bytes];
    }
}
