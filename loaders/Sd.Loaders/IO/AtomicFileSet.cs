namespace Sd.Loaders.IO;

/// <summary>
/// Files written so that all of them appear or none does: each <see cref="Add"/> writes its bytes to a temporary file
/// beside its target and flushes it to disk, and <see cref="Commit"/> renames them all into place. Disposing before
/// the commit deletes the temporaries, so a command whose second output fails (a full disk) leaves neither behind.
/// Each rename replaces its target at once (a reader sees the old file or the new one, never neither). When a set
/// has several files, the commit first copies aside the ones it replaces, and should a later rename fail it puts
/// them back, so a failed commit leaves every target as it was.
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

    /// <summary>Renames every written file over its target, in the order they were added; all or none.</summary>
    public void Commit()
    {
        // Copies of the files this commit replaces, so that a failed rename can restore the ones before it; a set of
        // one file needs none, its rename being all or nothing already.
        var committed = new List<(string Target, string? Backup)>(_pending.Count);
        string? backup = null;
        try
        {
            foreach ((string temp, string target) in _pending)
            {
                backup = _pending.Count > 1 && File.Exists(target) ? CopyAside(target) : null;
                File.Move(temp, target, overwrite: true);
                AtomicFile.Untrack(temp);
                committed.Add((target, backup));
                backup = null;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            DeleteBackup(backup); // the failed rename left its own target as it was
            RollBack(committed);
            throw;
        }
        foreach ((_, string? replaced) in committed)
        {
            DeleteBackup(replaced);
        }
        _pending.Clear();
    }

    private static string CopyAside(string target)
    {
        string backup = AtomicFile.TemporaryBeside(target);
        AtomicFile.Track(backup, isFolder: false);
        try
        {
            File.Copy(target, backup);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            DeleteBackup(backup);
            throw;
        }
        return backup;
    }

    /// <summary>
    /// Puts back what a failed <see cref="Commit"/> renamed into place, last first: a target that existed gets its
    /// copy renamed back over it, one that did not is deleted. Best effort: the failure that stopped the commit is the
    /// one reported.
    /// </summary>
    private static void RollBack(List<(string Target, string? Backup)> committed)
    {
        for (int i = committed.Count - 1; i >= 0; i--)
        {
            (string target, string? backup) = committed[i];
            try
            {
                if (backup != null)
                {
                    File.Move(backup, target, overwrite: true);
                    AtomicFile.Untrack(backup);
                }
                else
                {
                    File.Delete(target);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                DeleteBackup(backup);
            }
        }
    }

    private static void DeleteBackup(string? backup)
    {
        if (backup != null)
        {
            AtomicFile.TryDelete(backup);
            AtomicFile.Untrack(backup);
        }
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
