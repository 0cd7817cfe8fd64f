namespace Sd.Loaders.IO;

/// <summary>
/// Files written so that all of them appear or none does: each <see cref="Add"/> writes its bytes to a temporary file
/// beside its target and flushes it to disk, and <see cref="Commit"/> renames them all into place. Disposing before
/// the commit deletes the temporaries, so a command whose second output fails (a full disk) leaves neither behind.
/// The commit itself is a rename per file: should one fail (rare: the files are written, the folders checked), the
/// targets renamed before it stay replaced.
/// </summary>
public sealed class AtomicFileSet : IDisposable
{
    private readonly List<(string Temp, string Target)> _pending = [];

    /// <summary>Writes one file's bytes to its temporary; the target appears at <see cref="Commit"/>.</summary>
    /// <exception cref="IOException">Writing failed; the message names <paramref name="path"/>.</exception>
    public void Add(string path, Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        string target = AtomicFile.CheckTarget(path);
        string temp = AtomicFile.TemporaryBeside(target);
        AtomicFile.Track(temp, isFolder: false);
        _pending.Add((temp, target)); // before the write, so that Dispose deletes a partial temporary
        try
        {
            using var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
            write(stream);
            stream.Flush(flushToDisk: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw AtomicFile.Failure(path, temp, e);
        }
    }

    /// <summary>Renames every written file over its target, in the order they were added.</summary>
    public void Commit()
    {
        foreach ((string temp, string target) in _pending)
        {
            File.Move(temp, target, overwrite: true);
            AtomicFile.Untrack(temp);
        }
        _pending.Clear();
    }

    public void Dispose()
    {
        foreach ((string temp, _) in _pending)
        {
            AtomicFile.TryDelete(temp);
            AtomicFile.Untrack(temp);
        }
        _pending.Clear();
    }
}
